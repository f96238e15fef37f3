# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""alex_plan on the controller: hashing data the controller already holds needs no module process.

Every scenario run checks its plan once (roles/run_record/tasks/plan.yml); as a module run that is a Python
process, AnsiballZ and ansible.module_utils.basic, about 0.5 s, for one SHA-256. Here the same arguments,
as the module would receive them (JSON), are checked with the module's own argument spec and hashed with the
same function (run_record.check_plan). Anything else - arguments that are not plain JSON data, or that fail the
spec - goes to the module itself, so its answers (and its messages) stay the module's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.alexandria.ee.plugins.module_utils import run_record
from ansible_collections.alexandria.ee.plugins.plugin_utils.controller_args import module_params
from ansible_collections.alexandria.ee.plugins.modules.alex_plan import argument_spec


class ActionModule(ActionBase):

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        params = module_params(self._task.args, argument_spec())
        if params is None:
            result.update(self._execute_module(module_name="alexandria.ee.alex_plan", task_vars=task_vars))
            return result
        checked, refusal = run_record.check_plan(params["plan"], params["expected_hash"])
        result.update(checked)
        result["invocation"] = {"module_args": params}
        if refusal:
            result.update(failed=True, msg=refusal)
        return result
