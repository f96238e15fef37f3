"""YAML files as Ansible reads them, without importing Ansible's controller code.

`!unsafe` marks a plain string that Ansible never templates. Ansible's own loader (ansible.parsing) would
switch ansible.module_utils into controller mode for the whole pytest process, and modules run in-process
would then print their warnings instead of returning them (tests/conftest.py refuses that import).
"""
import yaml


class UnsafeTagLoader(yaml.SafeLoader):
    """SafeLoader that reads `!unsafe` scalars as plain strings."""


UnsafeTagLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def from_yaml(text):
    return yaml.load(text, Loader=UnsafeTagLoader)  # noqa: S506 - a SafeLoader subclass
