# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""For action plugins that do a module's work on the controller when they can (alex_plan, alex_run_report)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def module_params(task_args, argument_spec):
    """The module's validated parameters for these task arguments, taken as the module would receive them (JSON),
    or None when they are not plain JSON data or fail the spec: then the module itself runs, so its answers and
    its messages stay the module's."""
    try:
        args = json.loads(json.dumps(task_args))
    except (TypeError, ValueError):
        return None
    if not isinstance(args, dict):
        return None
    validated = ArgumentSpecValidator(argument_spec).validate(args)
    return None if validated.error_messages else validated.validated_parameters
