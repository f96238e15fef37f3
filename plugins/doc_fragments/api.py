# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Matches api_argument_spec() in plugins/module_utils/api_client.py.
    DOCUMENTATION = r'''
options:
  base_url:
    description:
      - Base URL of the Alexandria EE API, a public URL or a port-forward such as C(http://localhost:8080).
      - Can also be set with E(ALEX_BASE_URL).
      - The admin API needs it. The Kubernetes service proxy, which other modules use when it is unset, cannot
        carry the admin token (the Kubernetes API server removes the C(Authorization) header of the requests it
        passes through), so without O(base_url) the module fails and says so.
    type: str
  validate_certs:
    description:
      - Whether to verify the API's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle (a file, or a directory of CA certificates) to verify the API's TLS certificate with, instead of
        the bundled public CAs. A certificate that fails the check fails the module at once, naming this option.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request; more than 0, at most 86400.
    type: float
    default: 10
'''

    # Matches api_argument_spec(admin=True).
    ADMIN = r'''
options:
  admin_token:
    description:
      - Bearer token for the admin API. Never logged. Can also be set with E(ALEX_ADMIN_TOKEN).
      - Visible ASCII characters only (it is sent in an HTTP header).
    type: str
    required: true
'''

    # Matches api_route_argument_spec() less the Kubernetes options (the k8s_auth fragments document those;
    # validate_certs is the Kubernetes one, which the module documents for both routes).
    SERVICE_PROXY = r'''
options:
  base_url:
    description:
      - Base URL of the Alexandria EE API, a public URL or a port-forward such as C(http://localhost:8080).
      - Can also be set with E(ALEX_BASE_URL).
      - When unset (or empty), the API is reached through the Kubernetes API server's service proxy,
        C(<Kubernetes API>/api/v1/namespaces/<namespace>/services/<service>:<service_port>/proxy/<path>), with
        the Kubernetes options (O(kubeconfig), O(context), O(host), O(api_key), O(ca_cert)). The caller needs
        RBAC C(get) on C(services/proxy) in the namespace (C(create) for a C(POST)), and the Service needs a
        Ready endpoint.
    type: str
  ca_path:
    description:
      - CA bundle (a file, or a directory of CA certificates) to verify the API's TLS certificate with, when
        O(base_url) is set. A certificate that fails the check fails the module at once, naming this option.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: float
    default: 10
  service:
    description:
      - Name of the API's Service, for the service proxy. Defaults to O(release).
    type: str
  service_port:
    description:
      - Port of the Service, for the service proxy, as a number or a port name.
    type: str
    default: '80'
'''
