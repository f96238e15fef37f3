"""The `orchestrator` container: the standard gRPC health protocol on the Unix socket.

Runs with the pod directory as its working directory, so the contract's socket path
`/run/alexandria/orchestrator.sock` is `./run/alexandria/orchestrator.sock` here (the
shared emptyDir). Faults are read from ALEXLAB_FAULTS_DIR, as a chaos tool would inject them:

- orchestrator-crash.json: panics at start (before the socket exists) and when it appears
- orchestrator-hang.json:  every Check blocks (until the caller's deadline passes)
- oom.json:                grows its working set to `working_set_bytes` (really allocated and written)

A chart can break it too: an ALEX_SCHEDULER_STATE_FORMAT it cannot load (what the lab's chart 1.5.0 renders,
`alexlab break bad-upgrade`) makes it panic at start, before the socket exists, as orchestrator-crash does.
"""
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from alexlab.common import SOCKET_PATH, log_line

CHUNK = 8 * 1024 * 1024
GROW_POLL = 0.05
IDLE_POLL = 0.2


class Faults:
    def __init__(self, directory):
        self.directory = directory

    def _read(self, name):
        if not self.directory:
            return None
        path = os.path.join(self.directory, name + ".json")
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def crash(self):
        return self._read("orchestrator-crash") is not None

    def hang(self):
        return self._read("orchestrator-hang") is not None

    def working_set(self):
        fault = self._read("oom")
        return int(fault.get("working_set_bytes", 0)) if fault else 0


class Servicer(health.HealthServicer):
    def __init__(self, faults):
        super().__init__()
        self.faults = faults
        self.set("", health_pb2.HealthCheckResponse.SERVING)

    def Check(self, request, context):
        while self.faults.hang() and context.is_active():
            time.sleep(0.05)
        return super().Check(request, context)


def panic(socket_file, where):
    sys.stdout.write(
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a6f2e]\n\n"
        "goroutine 1 [running]:\n"
        "alexandria/orchestrator/internal/scheduler.(*Scheduler).%s(0x0)\n"
        "\t/src/internal/scheduler/scheduler.go:118 +0x2e\n" % where)
    sys.stdout.flush()
    try:
        os.unlink(socket_file)
    except OSError:
        pass
    os._exit(2)  # what a Go panic exits with


def main():
    faults = Faults(os.environ.get("ALEXLAB_FAULTS_DIR"))
    socket_path = os.environ.get("ALEX_ORCHESTRATOR_SOCKET", SOCKET_PATH)
    local = "." + socket_path  # relative to the pod directory: short, and it is the emptyDir
    log_line("info", "orchestrator starting pid=%d" % os.getpid())
    os.makedirs(os.path.dirname(local), exist_ok=True)
    if os.path.exists(local):
        os.unlink(local)
    log_line("info", "scheduler: loading job state")
    state_format = os.environ.get("ALEX_SCHEDULER_STATE_FORMAT", "")
    if state_format not in ("", "v1"):
        log_line("error", "scheduler: job state format %r is not supported by this orchestrator (supported: v1)"
                 % state_format)
        time.sleep(0.3)
        panic(local, "LoadState")
    if faults.crash():
        time.sleep(0.3)
        panic(local, "LoadState")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    health_pb2_grpc.add_HealthServicer_to_server(Servicer(faults), server)
    server.add_insecure_port("unix:" + local[2:])  # unix:<relative path>
    server.start()
    log_line("info", "serving grpc.health.v1.Health on unix://%s" % socket_path)

    stop = threading.Event()

    def on_term(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    held = []
    hung = False
    interval = IDLE_POLL
    while not stop.wait(interval):
        if faults.crash():
            panic(local, "Run")
        if faults.hang() != hung:
            hung = not hung
            log_line("warning" if hung else "info",
                     "scheduler: worker pool deadlocked waiting on job lock" if hung else "scheduler: job lock released")
        target = faults.working_set()
        have = len(held) * CHUNK
        # A chunk every GROW_POLL while the working set grows (the OOM fault's pace); the fault files are read
        # every IDLE_POLL otherwise (an idle lab's CPU).
        interval = GROW_POLL if have + CHUNK < target else IDLE_POLL
        if have < target:
            held.append(bytearray(b"\x5a") * CHUNK)  # written, so it is resident
            if len(held) % 4 == 0:
                log_line("info", "scheduler: job index cache %d MiB" % (len(held) * CHUNK // 1048576))
        elif target == 0 and held:
            held = []
            log_line("info", "scheduler: job index cache released")
    log_line("info", "orchestrator shutting down")
    server.stop(0.5).wait()
    try:
        os.unlink(local)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
