# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection: the shared argument spec and one place that builds a client.

Option names and environment fallbacks follow kubernetes.core (docs/contract.md section 1).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.alexandria.ee.plugins.module_utils import arg_checks
from ansible_collections.alexandria.ee.plugins.module_utils import tls

# The kubernetes library takes about half a second to import, so it is imported on first use:
# by build_api_client, describe_api_error, transport_errors, or when any of these module
# attributes is read (module __getattr__, PEP 562): HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR,
# ApiException. Modules that only need the argument specs (or read no Secret) never pay for it.
_LAZY_NAMES = ("HAS_KUBERNETES", "KUBERNETES_IMPORT_ERROR", "ApiException")
_LIB = {}


class _MissingApiException(Exception):
    """Placeholder so except clauses work without the library."""


def _lib():
    if not _LIB:
        try:
            import kubernetes
            import kubernetes.config
            from kubernetes.client.rest import ApiException
            import urllib3.exceptions
            _LIB.update(kubernetes=kubernetes, ApiException=ApiException,
                        transport_errors=(urllib3.exceptions.HTTPError, OSError),
                        HAS_KUBERNETES=True, KUBERNETES_IMPORT_ERROR=None)
        except ImportError:
            _LIB.update(kubernetes=None, ApiException=_MissingApiException, transport_errors=(OSError,),
                        HAS_KUBERNETES=False, KUBERNETES_IMPORT_ERROR=traceback.format_exc())
    return _LIB


def __getattr__(name):
    if name in _LAZY_NAMES:
        return _lib()[name]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def missing_library_details():
    """fail_json keywords for a failure that may come from a missing kubernetes library: its import traceback as
    C(exception), or nothing when the library is there. Read at failure time, so importing a module that uses it
    does not import the library (alex_triage starts its API probe before that import)."""
    error = _lib()["KUBERNETES_IMPORT_ERROR"]
    return dict(exception=error) if error else {}


DEFAULT_NAMESPACE = "alexandria"
DEFAULT_RELEASE = "alexandria-ee"


def k8s_auth_argument_spec():
    return dict(
        kubeconfig=dict(type=arg_checks.path("a kubeconfig file"), fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
        context=dict(type=arg_checks.text(1024, "a kubeconfig context name"),
                     fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
        host=dict(type=arg_checks.url(what="the Kubernetes API URL (https://...)"),
                  fallback=(env_fallback, ["K8S_AUTH_HOST"])),
        api_key=dict(type=arg_checks.token("the Kubernetes API token"), no_log=True,
                     fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
        validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
        ca_cert=dict(type=arg_checks.path("a CA certificate file"), aliases=["ssl_ca_cert"],
                     fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    )


def deployment_argument_spec():
    """Where the release lives (contract section 1)."""
    return dict(
        namespace=dict(type=arg_checks.k8s_name(label=True), default=DEFAULT_NAMESPACE),
        # Helm release names are labels of at most 53 characters (Helm adds suffixes to reach 63).
        release=dict(type=arg_checks.k8s_name(label=True, limit=53), default=DEFAULT_RELEASE),
    )


class K8sError(Exception):
    """A Kubernetes failure, already phrased for an operator."""


def build_api_client(params):
    """A kubernetes.client.ApiClient from the auth options; raises K8sError."""
    lib = _lib()
    kubernetes = lib["kubernetes"]
    if not lib["HAS_KUBERNETES"]:
        raise K8sError("the Python library 'kubernetes' is required: pip install kubernetes")
    try:
        if params.get("host"):
            configuration = kubernetes.client.Configuration()
            configuration.host = params["host"]
            if params.get("api_key"):
                configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
        else:
            configuration = kubernetes.client.Configuration()
            try:
                kubernetes.config.load_kube_config(
                    config_file=params.get("kubeconfig"),
                    context=params.get("context"),
                    client_configuration=configuration,
                )
            except kubernetes.config.ConfigException:
                if params.get("kubeconfig") or params.get("context"):
                    raise
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            if params.get("api_key"):
                configuration.api_key = {"authorization": "Bearer " + params["api_key"]}
                # The loader's refresh hook would put the kubeconfig's own token back before each request.
                configuration.refresh_api_key_hook = None
        if params.get("validate_certs") is not None:
            configuration.verify_ssl = params["validate_certs"]
        if params.get("ca_cert"):
            configuration.ssl_ca_cert = params["ca_cert"]
        configuration.retries = 1
        return kubernetes.client.ApiClient(configuration)
    except (kubernetes.config.ConfigException, OSError, ValueError) as exc:
        raise K8sError("cannot load Kubernetes configuration: %s; set kubeconfig/context or host" % exc)


def describe_api_error(exc, what):
    """One sentence for an ApiException or a transport error, naming what was asked."""
    if isinstance(exc, _lib()["ApiException"]):
        status = getattr(exc, "status", None)
        if status == 401:
            return "Kubernetes API refused the credentials (401) while %s: check kubeconfig/api_key" % what
        if status == 403:
            return "Kubernetes RBAC forbids %s (403): grant the job's service account access" % what
        if status == 404:
            return "not found (404) while %s: check namespace and names" % what
        return "Kubernetes API answered %s %s while %s" % (status, getattr(exc, "reason", ""), what)
    reason = tls.certificate_failure(str(exc))
    if reason is not None:
        return "TLS failure while %s: %s" % (what, untrusted_words(reason))
    return "Kubernetes API unreachable while %s: %s" % (what, exc.__class__.__name__ + ": " + str(exc).split("\n", maxsplit=1)[0])


def untrusted_words(reason):
    """The Kubernetes API server's certificate failed its check: why, and what to pass."""
    return tls.untrusted("the Kubernetes API server's", reason,
                         "ca_cert (or K8S_AUTH_SSL_CA_CERT, or the kubeconfig's certificate-authority)")


def transport_errors():
    """The exception classes a request can raise besides ApiException."""
    return _lib()["transport_errors"]
