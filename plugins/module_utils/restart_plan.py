# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which causes a pod restart fixes, and which pods it deletes (runbook Scenario 1 step 2). Pure functions.

roles/api_not_serving (tasks/restart.yml) plans the same pods; alex_triage uses these to check, in the same
process and with the same pod list, whether the credential may delete them (check mode), so the rehearsal
does not need a second Kubernetes module run to learn it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The causes roles/api_not_serving answers with a restart (its api_not_serving_actions map).
RESTART_CAUSES = ("orchestrator_socket_missing", "orchestrator_deadline_exceeded")


def restart_fixes(causes):
    """True when the most likely cause (causes[0], as alex_triage orders them) is one a restart fixes."""
    return bool(causes) and causes[0].get("code") in RESTART_CAUSES


def restart_targets(pod_summaries):
    """The pods a restart deletes: the release's unready pods, else all of them (sorted names)."""
    names = [p.get("name") for p in pod_summaries if p.get("name")]
    unready = [p.get("name") for p in pod_summaries if p.get("name") and not p.get("ready")]
    return sorted(unready or names)
