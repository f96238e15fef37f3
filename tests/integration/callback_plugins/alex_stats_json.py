# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper: writes a playbook run's custom stats (set_stats), host stats, changed tasks and task times as JSON.

Enabled by the tests with ANSIBLE_CALLBACK_PLUGINS=<this dir>, ANSIBLE_CALLBACKS_ENABLED=alex_stats_json and
ALEX_STATS_JSON=<output file>.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: alex_stats_json
type: aggregate
short_description: Write custom stats, host stats and changed tasks to the file in ALEX_STATS_JSON (tests only)
description:
  - Test helper of the alexandria.ee test suite; not shipped in the collection.
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


def _plain(value):
    return json.loads(json.dumps(value, default=str))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "alex_stats_json"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.changed = []
        self.failed = []
        self.started = time.time()
        self.tasks = []  # [name, seconds since the callback loaded at start, at end]

    def v2_playbook_on_start(self, playbook):
        self.started = time.time()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append([task.get_name(), round(time.time() - self.started, 3), None])

    def _ended(self):
        if self.tasks and self.tasks[-1][2] is None:
            self.tasks[-1][2] = round(time.time() - self.started, 3)

    def v2_runner_on_ok(self, result):
        self._ended()
        if result._result.get("changed"):
            self.changed.append(result._task.get_name())

    def v2_runner_on_skipped(self, result):
        self._ended()

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._ended()
        if not ignore_errors:
            self.failed.append(dict(task=result._task.get_name(), msg=str(result._result.get("msg", ""))))

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("ALEX_STATS_JSON")
        if not path:
            return
        data = dict(custom=_plain(stats.custom), changed_tasks=self.changed, failed_tasks=self.failed,
                    tasks=self.tasks, seconds=round(time.time() - self.started, 3), started_epoch=self.started,
                    hosts=dict((host, stats.summarize(host)) for host in sorted(stats.processed)))
        with open(path, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
