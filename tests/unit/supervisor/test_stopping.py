"""Stopping the platform: every copy of a role is sent SIGTERM at once (roles still one after
another, front door first), and a SIGTERM received while the processes start is acted on.

Children here are small Python processes standing in for `remit ROLE`, as in test_restarts."""

import inspect
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from remit import supervisor as supervisor_module
from remit.config import from_env, network_timeout_s, shutdown_grace_s
from remit.grpcutil import server as grpc_server
from remit.grpcutil.server import CLEANUP_WAIT_S
from remit.payments import wiring
from remit.readiness import READY_FD_ENV
from remit.supervisor import READY_TIMEOUT_S, Child, Supervisor, stop_grace_s
from remit.webhooks.domain import DELIVERY_TIMEOUT_S
from remit.worker import runner
from remit.worker.leases import stop_drain_for

# Ready at once; on SIGTERM, takes a second to finish what it was doing, writing to
# REMIT_TEST_LOG when it begins and ends.
STOPS_IN_A_SECOND = (
    "import os, signal, sys, time\n"
    "log = os.environ['REMIT_TEST_LOG']\n"
    "role = os.environ['REMIT_TEST_ROLE']\n"
    "def note(what):\n"
    "    with open(log, 'a') as f: f.write(f'{role} {what}\\n')\n"
    "def stop(*_):\n"
    "    note('stopping'); time.sleep(1); note('stopped'); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "fd = int(os.environ['REMIT_READY_FD']); os.write(fd, b'ready\\n'); os.close(fd)\n"
    "time.sleep(60)\n"
)
NEVER_READY = "import time; time.sleep(60)"


def _spawn(script: str, log: Path) -> Callable[..., Child]:
    def spawn(role: str, env: dict[str, str], stdout: object = None) -> Child:
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            env={
                **env,
                READY_FD_ENV: str(write_fd),
                "REMIT_TEST_LOG": str(log),
                "REMIT_TEST_ROLE": role,
            },
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        return Child(role=role, process=process, ready_fd=read_fd, env=env)

    return spawn


@pytest.mark.parametrize("network_timeout", ["1", "10", "120"])
def test_a_stage_waits_longer_than_any_process_s_own_stop(
    monkeypatch: pytest.MonkeyPatch, network_timeout: str
) -> None:
    """Killed before its own stop ends, a process cuts off the network steps it was letting
    finish (their keys then held for a lease, retries answered 409)."""
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", network_timeout)
    drain_s = network_timeout_s()  # the payments' drain of steps outliving their callers
    core_s = shutdown_grace_s() + CLEANUP_WAIT_S + drain_s
    worker_s = stop_drain_for(DELIVERY_TIMEOUT_S) + drain_s
    assert stop_grace_s() > max(core_s, worker_s)


def test_the_processes_stop_within_those_bounds() -> None:
    """What the test above adds up is what the processes wait for."""
    assert "server.stop(shutdown_grace_s())" in inspect.getsource(grpc_server.serve_grpc)
    assert "in_flight.wait(CLEANUP_WAIT_S)" in inspect.getsource(grpc_server.serve_grpc)
    assert "drain(network_timeout_s())" in inspect.getsource(wiring.build_payments)
    assert "timeout=self.stop_drain_s" in inspect.getsource(runner.Worker.run_forever)


def test_copies_of_a_role_stop_together_and_roles_in_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    spawn = _spawn(STOPS_IN_A_SECOND, log)
    supervisor = Supervisor(from_env({"REMIT_DATA_DIR": str(tmp_path)}), roles=())
    children = [
        spawn("core", dict(os.environ)),
        *(spawn("api", dict(os.environ)) for _ in range(3)),
    ]
    for child in children:
        supervisor_module.await_ready(child, time.monotonic() + 30)
    supervisor._children.extend(children)
    supervisor.stop()
    lines = log.read_text().splitlines()
    # Each copy takes a second over its stop: one after another, the first would say it
    # stopped before the second began. (Told by the order, not by how long the stop took,
    # which a loaded machine stretches.)
    assert lines[:3] == ["api stopping"] * 3
    assert lines.index("core stopping") > max(i for i, x in enumerate(lines) if x == "api stopped")


def test_a_stop_asked_for_while_the_processes_start_is_acted_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only once every process is ready, up to a minute later (READY_TIMEOUT_S)."""
    monkeypatch.setattr(supervisor_module, "spawn_process", _spawn(NEVER_READY, tmp_path / "log"))
    supervisor = Supervisor(from_env({"REMIT_DATA_DIR": str(tmp_path)}), roles=("worker",))
    threading.Timer(0.3, supervisor.request_stop, args=(15, None)).start()
    began = time.monotonic()
    try:
        supervisor.start()
        took = time.monotonic() - began
    finally:
        supervisor.stop()
    assert took < READY_TIMEOUT_S / 4
