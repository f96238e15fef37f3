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
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
requirements:
  - psycopg2 (C(psycopg2-binary))
'''
