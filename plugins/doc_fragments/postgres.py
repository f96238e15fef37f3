# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Matches postgres_argument_spec() in plugins/module_utils/pg.py.
    DOCUMENTATION = r'''
options:
  dsn:
    description:
      - libpq connection string or URI of the Alexandria EE database, as stored under C(database-dsn) in the
        release's Secret. Never logged; its password is masked in every message.
      - Can also be set with E(ALEX_DSN). The O(login_host) family of options overrides its parts.
    type: str
  login_host:
    description:
      - Database host. Can also be set with E(PGHOST).
    type: str
  login_port:
    description:
      - Database port. Can also be set with E(PGPORT).
    type: int
  login_user:
    description:
      - Database user. Can also be set with E(PGUSER).
    type: str
  login_password:
    description:
      - Database password. Never logged. Can also be set with E(PGPASSWORD).
    type: str
  login_db:
    description:
      - Database name. Can also be set with E(PGDATABASE).
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode). Can also be set with E(PGSSLMODE).
      - When neither this option, E(PGSSLMODE), nor the DSN (C(sslmode), or a C(service)) names one, the module
        uses V(verify-full), not libpq's own default V(prefer), which checks no certificate. A TCP connection then
        needs TLS and a server certificate signed by O(ssl_rootcert) and naming the host connected to. Unix-socket
        connections are unaffected (libpq uses no TLS on them).
      - Name V(disable), V(prefer) or V(require) explicitly to connect to a server without TLS or without checking
        its certificate.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_rootcert:
    description:
      - CA certificate file (PEM) that the server's certificate is checked against, libpq C(sslrootcert). Can also
        be set with E(PGSSLROOTCERT). C(sslrootcert) in the DSN works too.
      - Unset, libpq reads C(~/.postgresql/root.crt); V(system) uses the system's trusted CAs.
    type: path
requirements:
  - psycopg2 (C(psycopg2-binary))
'''
