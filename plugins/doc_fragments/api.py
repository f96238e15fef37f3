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
    type: str
    required: true
  validate_certs:
    description:
      - Whether to verify the API's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle to verify the API's TLS certificate with.
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
