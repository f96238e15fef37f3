# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore_loss filter: what restoring a backup would lose (plugins/module_utils/restore_drill.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.alexandria.ee.plugins.module_utils import restore_drill


def restore_loss(backup_tenants, live_tenants):
    if not isinstance(backup_tenants, dict) or not isinstance(live_tenants, dict):
        raise AnsibleFilterError("restore_loss needs two dicts of tenants (alex_audit_verify's tenants, or "
                                 "alex_audit_backup's tenants with live_tenants)")
    try:
        return restore_drill.loss_report(backup_tenants, live_tenants)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AnsibleFilterError("restore_loss: the tenants are not verification results (%s)" % exc)


class FilterModule(object):

    def filters(self):
        return {"restore_loss": restore_loss}
