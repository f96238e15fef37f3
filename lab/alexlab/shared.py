"""The collection's pure codecs, reused as they are (never copied).

Inside the venv the collection is importable as `ansible_collections.alexandria.ee`; from a bare
checkout the files are loaded from `plugins/module_utils/` next to `lab/`.
"""
import importlib.util
import os
import sys
import types

try:
    from ansible_collections.alexandria.ee.plugins.module_utils import (audit_chain, audit_keyring, license_codec,
                                                                        license_issuers)
except ImportError:  # pragma: no cover - only outside the venv
    _base = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "plugins", "module_utils")

    def _load(name):
        spec = importlib.util.spec_from_file_location("alexlab_shared_" + name, os.path.join(_base, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    audit_chain = _load("audit_chain")
    license_codec = _load("license_codec")
    # license_issuers imports license_codec by its collection name: register the copy just loaded under it.
    _package = "ansible_collections.alexandria.ee.plugins.module_utils"
    _parts = _package.split(".")
    for _depth in range(1, len(_parts) + 1):
        sys.modules.setdefault(".".join(_parts[:_depth]), types.ModuleType(".".join(_parts[:_depth])))
    sys.modules[_package + ".license_codec"] = license_codec
    sys.modules[_package].license_codec = license_codec
    license_issuers = _load("license_issuers")
    audit_keyring = None  # imports the collection's audit_chain by its full name: the venv is needed

__all__ = ["audit_chain", "audit_keyring", "license_codec", "license_issuers"]
