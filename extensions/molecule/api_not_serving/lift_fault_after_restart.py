"""Wait until the lab's current pod is deleted, then lift a fault (`alexlab heal FAULT --no-wait`).

Usage: python lift_fault_after_restart.py LAB_DIR FAULT  (gives up after 10 minutes)
"""
import json
import os
import subprocess
import sys
import time

import kubernetes


def main(lab_dir, fault):
    with open(os.path.join(lab_dir, "lab.json"), encoding="utf-8") as handle:
        lab = json.load(handle)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=lab["kubeconfig"], client_configuration=config)
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(lab["namespace"],
                                        label_selector="app.kubernetes.io/instance=%s" % lab["release"])
        alive = [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp]
        if lab["pod"] not in alive:
            alexlab = os.path.join(os.path.dirname(sys.executable), "alexlab")
            return subprocess.call([alexlab, "heal", fault, "--no-wait", "--dir", lab_dir])
        time.sleep(0.2)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
