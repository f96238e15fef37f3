# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Matches k8s_auth_argument_spec() in plugins/module_utils/k8s_client.py.
    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file. Without it, C(~/.kube/config) is used, then the in-cluster configuration.
      - Can also be set with E(K8S_AUTH_KUBECONFIG).
    type: path
  context:
    description:
      - The kubeconfig context to use. Can also be set with E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, instead of a kubeconfig. Can also be set with E(K8S_AUTH_HOST).
    type: str
  api_key:
    description:
      - Bearer token for the Kubernetes API. Can also be set with E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the Kubernetes API server's TLS certificate. Can also be set with E(K8S_AUTH_VERIFY_SSL).
      - Unset keeps what the kubeconfig says (it verifies unless the cluster sets C(insecure-skip-tls-verify)); with
        O(host), unset verifies.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - CA bundle to verify the Kubernetes API server with. Can also be set with E(K8S_AUTH_SSL_CA_CERT).
      - A certificate that fails the check fails the module at once, naming this option.
    type: path
    aliases: [ssl_ca_cert]
'''

    # Matches deployment_argument_spec().
    DEPLOYMENT = r'''
options:
  namespace:
    description:
      - Namespace of the Alexandria EE release (an RFC 1123 label, at most 63 characters).
    type: str
    default: alexandria
  release:
    description:
      - Helm release name. Pods are selected by C(app.kubernetes.io/instance=<release>); the Deployment,
        Service and main Secret carry this name and the license Secret is C(<release>-license).
      - Lowercase letters, digits and C(-), at most 53 characters, as Helm requires.
    type: str
    default: alexandria-ee
'''
