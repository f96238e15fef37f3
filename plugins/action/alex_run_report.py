# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""alex_run_report on the controller, when the controller is where the record goes.

Every scenario run ends with its run record (roles/run_record); as a module run that is a Python process,
AnsiballZ and ansible.module_utils.basic, about 0.4 s, to write two small files. With the local connection (every
shipped playbook) and no become, the target's filesystem is the controller's, so the same arguments, as the module
would receive them (JSON), are checked with the module's own argument spec and written by the same function
(run_record.report). Anything else - another connection, become, arguments that are not plain JSON data or that
fail the spec - goes to the module itself, so its answers (and its messages) stay the module's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.alexandria.ee.plugins.module_utils import run_record
from ansible_collections.alexandria.ee.plugins.plugin_utils.controller_args import module_params
from ansible_collections.alexandria.ee.plugins.modules.alex_run_report import argument_spec


class ActionModule(ActionBase):

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        here = self._connection.transport == "local" and not self._play_context.become
        params = module_params(self._task.args, argument_spec()) if here else None
        if params is None:
            result.update(self._execute_module(module_name="alexandria.ee.alex_run_report", task_vars=task_vars))
            return result
        written, error = run_record.report(params, self._task.check_mode)
        result["invocation"] = {"module_args": params}
        if error:
            result.update(failed=True, msg=error)
        else:
            result.update(written)
        return result
