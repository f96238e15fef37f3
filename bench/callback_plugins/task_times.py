# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench helper (not shipped): each task's wall time, written as JSON to $ALEX_TASK_TIMES at the end of a run."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: task_times
type: aggregate
short_description: Per-task wall times for the benches
description:
  - Writes [{"task", "action", "seconds"}] in run order to the file named by E(ALEX_TASK_TIMES).
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.times = []
        self.current = None

    def _close(self):
        if self.current is not None:
            task, started = self.current
            self.times.append({"task": task.get_name(), "action": task.action,
                               "seconds": round(time.monotonic() - started, 4)})
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = (task, time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        path = os.environ.get("ALEX_TASK_TIMES")
        if path:
            with open(path, "w") as handle:
                json.dump(self.times, handle)
