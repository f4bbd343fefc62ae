"""The supervisor starts a dead process again, and stops the platform when one keeps dying.

Children here are small Python processes standing in for `remit ROLE`: they take part in the
readiness handshake exactly as a real one does (a "ready" line on the inherited pipe)."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from remit import supervisor as supervisor_module
from remit.config import from_env
from remit.readiness import READY_FD_ENV
from remit.supervisor import Child, RestartBudget, Supervisor

STAYS_UP = (
    "import os, time; fd = int(os.environ['REMIT_READY_FD']); os.write(fd, b'ready\\n'); "
    "os.close(fd); time.sleep(60)"
)
DIES_AT_ONCE = "import sys; sys.exit(3)"


def _spawn_running(script: str) -> Callable[..., Child]:
    def spawn(role: str, env: dict[str, str], stdout: object = None) -> Child:
        read_fd, write_fd = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            env={**env, READY_FD_ENV: str(write_fd)},
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        return Child(role=role, process=process, ready_fd=read_fd, env=env)

    return spawn


def _supervisor(tmp_path: Path, budget: RestartBudget) -> Supervisor:
    config = from_env({"REMIT_DATA_DIR": str(tmp_path)})
    return Supervisor(config, roles=("worker",), budget=budget)


def test_the_budget_allows_so_many_restarts_per_window() -> None:
    clock = [100.0]
    budget = RestartBudget(limit=3, window_s=60.0, now=lambda: clock[0])
    assert [budget.take("core") for _ in range(3)] == [1, 2, 3]
    assert budget.take("core") is None
    assert budget.take("vault") == 1  # counted per role
    clock[0] += 61.0
    assert budget.take("core") == 1


def test_a_dead_child_is_started_again_with_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "RESTART_PAUSE_S", 0.0)
    monkeypatch.setattr(supervisor_module, "spawn_process", _spawn_running(STAYS_UP))
    supervisor = _supervisor(tmp_path, RestartBudget(limit=2))
    env = {**os.environ, "REMIT_MARK": "kept"}
    dead = _spawn_running(DIES_AT_ONCE)("worker", env)
    dead.process.wait()
    supervisor._children.append(dead)
    code: list[int] = []
    waiting = threading.Thread(target=lambda: code.append(supervisor.wait()))
    waiting.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and supervisor._children[0] is dead:
            time.sleep(0.05)
        restarted = supervisor._children[0]
        assert restarted is not dead
        assert restarted.process.poll() is None
        assert restarted.env["REMIT_MARK"] == "kept"
    finally:
        supervisor.request_stop(0, None)
        waiting.join(timeout=30)
        supervisor.stop()
    assert code == [0]


def test_a_child_that_keeps_dying_stops_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "RESTART_PAUSE_S", 0.0)
    spawned: list[Child] = []
    dies = _spawn_running(DIES_AT_ONCE)

    def spawn(role: str, env: dict[str, str], stdout: object = None) -> Child:
        child = dies(role, env)
        spawned.append(child)
        return child

    monkeypatch.setattr(supervisor_module, "spawn_process", spawn)
    supervisor = _supervisor(tmp_path, RestartBudget(limit=2, window_s=60.0))
    first = dies("worker", dict(os.environ))
    first.process.wait()
    supervisor._children.append(first)
    assert supervisor.wait() == 1
    assert len(spawned) == 2  # the budget's two restarts, then no more
    assert all(child.process.poll() is not None for child in spawned)
    supervisor.stop()


def test_a_child_waiting_for_its_database_is_started_again_beyond_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 75 says "my database is out of reach" (`remit.bootstrap`): not a fault that should
    stop the platform, however long the outage lasts; the child is tried again until it
    comes up."""
    outage = 4  # starts that find the database out of reach, more than the budget allows
    spawned: list[Child] = []

    def spawn(role: str, env: dict[str, str], stdout: object = None) -> Child:
        script = "import sys; sys.exit(75)" if len(spawned) < outage else STAYS_UP
        child = _spawn_running(script)(role, env)
        spawned.append(child)
        return child

    monkeypatch.setattr(supervisor_module, "spawn_process", spawn)
    config = from_env({"REMIT_DATA_DIR": str(tmp_path)})
    supervisor = Supervisor(config, roles=("worker",), budget=RestartBudget(limit=2),
                            database_wait_s=0.0)  # fmt: skip
    first = spawn("worker", dict(os.environ))
    first.process.wait()
    supervisor._children.append(first)
    code: list[int] = []
    waiting = threading.Thread(target=lambda: code.append(supervisor.wait()))
    waiting.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(spawned) <= outage:
            time.sleep(0.05)
        while time.monotonic() < deadline and supervisor._children[0] is not spawned[-1]:
            time.sleep(0.05)
        assert supervisor._children[0] is spawned[outage]
        assert supervisor._children[0].process.poll() is None
        assert code == []  # still supervising
    finally:
        supervisor.request_stop(0, None)
        waiting.join(timeout=30)
        supervisor.stop()
    assert code == [0]


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_failed_starts_leave_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database outage restarts a process every few seconds for as long as it lasts: one
    descriptor kept per attempt would run the supervisor out of them within hours."""
    attempts = 12
    spawned: list[Child] = []
    waits_for_database = _spawn_running("import sys; sys.exit(75)")

    def spawn(role: str, env: dict[str, str], stdout: object = None) -> Child:
        child = waits_for_database(role, env)
        spawned.append(child)
        return child

    monkeypatch.setattr(supervisor_module, "spawn_process", spawn)
    config = from_env({"REMIT_DATA_DIR": str(tmp_path)})
    supervisor = Supervisor(config, roles=("worker",), database_wait_s=0.0)
    before = _open_descriptors()
    first = spawn("worker", dict(os.environ))
    first.process.wait()
    supervisor._children.append(first)
    waiting = threading.Thread(target=supervisor.wait)
    waiting.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(spawned) < attempts:
            time.sleep(0.05)
    finally:
        supervisor.request_stop(0, None)
        waiting.join(timeout=30)
        supervisor.stop()
    assert len(spawned) >= attempts
    # (A little slack for whatever else the test process opens meanwhile.)
    assert _open_descriptors() - before < 3
