# -*- coding: utf-8 -*-
# Copyright: (c) 2026, alexandria.ee contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""alexandria.ee.alertmanager: receive Alertmanager webhooks, one event per alert.

Arguments:
    host: address to listen on (default 127.0.0.1)
    port: port to listen on (default 5050)
    deployment_label: the alert label that names the Alexandria EE deployment, which is
        the inventory host the playbook runs against (default "deployment")
    token: when set, requests must carry "Authorization: Bearer <token>"

Each event is {"alert": <the Alertmanager alert>, "meta": {"endpoint", "hosts": "<deployment>"}};
ansible-rulebook limits run_playbook to meta.hosts, so each alert acts on its own deployment only.
Alerts without the deployment label are dropped with a log line: acting on every deployment
because one label is missing would be worse than not acting.

Example (Alertmanager receiver):
    receivers:
      - name: alexandria-eda
        webhook_configs:
          - url: http://eda.example:5050/alerts
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import hmac
import logging

try:
    from aiohttp import web
    HAS_AIOHTTP = True
except ImportError:
    HAS_AIOHTTP = False

LOG = logging.getLogger(__name__)


def alerts_to_events(payload, deployment_label="deployment", endpoint="alerts"):
    """Pure: split an Alertmanager webhook payload into events; returns (events, dropped)."""
    events = []
    dropped = 0
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    for alert in alerts or []:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        deployment = labels.get(deployment_label) if isinstance(labels, dict) else None
        if not deployment:
            dropped += 1
            continue
        events.append({"alert": alert, "meta": {"endpoint": endpoint, "hosts": str(deployment)}})
    return events, dropped


async def main(queue, args):
    if not HAS_AIOHTTP:
        raise RuntimeError("alexandria.ee.alertmanager needs aiohttp (installed with ansible-rulebook)")
    deployment_label = args.get("deployment_label", "deployment")
    token = args.get("token")

    async def receive(request):
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given, "Bearer " + token):
                return web.json_response({"error": "unauthorized"}, status=401)
        try:
            payload = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        events, dropped = alerts_to_events(payload, deployment_label, request.match_info.get("endpoint", ""))
        if dropped:
            LOG.warning("dropped %d alert(s) without the %r label", dropped, deployment_label)
        for event in events:
            await queue.put(event)
        return web.json_response({"accepted": len(events), "dropped": dropped}, status=202)

    app = web.Application()
    app.router.add_post("/{endpoint:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, args.get("host", "127.0.0.1"), int(args.get("port", 5050)))
    await site.start()
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    class _PrintQueue:
        async def put(self, event):
            print(event)

    asyncio.run(main(_PrintQueue(), {"port": 5050}))
