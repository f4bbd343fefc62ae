"""A second Ctrl-C or SIGTERM stops at once: the processes still stopping are killed, and
migrations still running are interrupted, the embedded databases stopped all the same. Either
request says so in a line, and a platform asked to stop before it ran does not say it runs.

Children here are small Python processes standing in for `remit ROLE`, as in test_restarts;
`remit serve` runs in this process, its databases and migrations stood in for."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from remit import serve as serve_module
from remit import supervisor as supervisor_module
from remit.command_exits import EXIT_INTERRUPTED
from remit.config import PlatformConfig, from_env
from remit.databases import ResolvedDatabases
from remit.readiness import READY_FD_ENV
from remit.supervisor import Child, Supervisor, await_ready

# Ready at once; takes its time over a SIGTERM, as a process letting a long call finish.
STOPS_SLOWLY = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: time.sleep(60))\n"
    "fd = int(os.environ['REMIT_READY_FD']); os.write(fd, b'ready\\n'); os.close(fd)\n"
    "time.sleep(60)\n"
)
# Long, so that no slowness of a loaded machine passes for the wait the test shows is cut off.
GRACE_S = 60.0
MIGRATIONS_S = 30.0


def _start(role: str) -> Child:
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", STOPS_SLOWLY],
        env={**os.environ, READY_FD_ENV: str(write_fd)},
        pass_fds=(write_fd,),
        start_new_session=True,  # as `spawn_process` starts them
    )
    os.close(write_fd)
    child = Child(role=role, process=process, ready_fd=read_fd)
    await_ready(child, time.monotonic() + 30)
    return child


@pytest.fixture
def signals_restored() -> Iterator[None]:
    """`remit serve` installs its own handlers in this process; put the test's back."""
    stop_signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    kept = {signum: signal.getsignal(signum) for signum in stop_signals}
    try:
        yield
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def test_a_second_request_kills_the_processes_still_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # (Without the second request, the stop waits out this grace.)
    monkeypatch.setattr(supervisor_module, "stop_grace_s", lambda: GRACE_S)
    supervisor = Supervisor(from_env({"REMIT_DATA_DIR": str(tmp_path)}), roles=())
    children = [_start("api"), _start("core"), _start("vault")]
    supervisor._children.extend(children)
    caplog.set_level(logging.WARNING, logger=supervisor_module.__name__)
    supervisor.request_stop(signal.SIGTERM, None)
    again = threading.Timer(0.5, supervisor.request_stop, args=(signal.SIGTERM, None))
    again.start()
    began = time.monotonic()
    try:
        supervisor.stop()
        took = time.monotonic() - began
    finally:
        again.join()
        for child in children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()
    # The api was killed mid-stop, the later stages without being asked to stop first: not
    # once the grace was out (which kills too), however slowly a loaded machine stops them.
    assert took < GRACE_S / 3
    assert [child.process.returncode for child in children] == [-signal.SIGKILL] * 3
    assert [record.getMessage() for record in caplog.records] == [
        "stopping; send again to stop at once",
        "stopping at once: killing the processes still running",
    ]


def _serve_standing_in(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrate: Callable[[PlatformConfig], list[str]],
    stopped: list[str],
) -> PlatformConfig:
    """`remit serve` without databases: `migrate` stands in for the migrations, the embedded
    databases' stop is noted in `stopped`."""

    class Databases(ResolvedDatabases):
        def stop_embedded(self) -> None:
            stopped.append("embedded databases")

    monkeypatch.setattr(serve_module, "refuse_ports_in_use", lambda config: None)
    monkeypatch.setattr(serve_module, "resolve_databases", lambda config, **_: Databases(config))
    monkeypatch.setattr(serve_module, "migrate_all", migrate)
    account = {"id": "acct_1", "secret_key": "sk_test_1", "publishable_key": "pk_test_1"}
    monkeypatch.setattr(serve_module, "_ensure_default_account", lambda config: account)
    return from_env({"REMIT_DATA_DIR": str(tmp_path)})


def _signal_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.1)  # the handler runs meanwhile, in this (the main) thread


def test_a_second_request_while_migrating_interrupts_them_and_stops_the_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals_restored: None
) -> None:
    stopped: list[str] = []

    def migrate(config: PlatformConfig) -> list[str]:
        _signal_self(signal.SIGTERM)
        _signal_self(signal.SIGINT)
        time.sleep(MIGRATIONS_S)  # (a long index build)
        stopped.append("migrations finished")
        return []

    config = _serve_standing_in(tmp_path, monkeypatch, migrate, stopped)
    began = time.monotonic()
    code = serve_module.serve(config)
    assert time.monotonic() - began < MIGRATIONS_S / 3
    assert code == EXIT_INTERRUPTED
    assert stopped == ["embedded databases"]


def test_a_platform_asked_to_stop_while_migrating_says_so_and_not_that_it_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signals_restored: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []

    def migrate(config: PlatformConfig) -> list[str]:
        _signal_self(signal.SIGTERM)
        stopped.append("migrations finished")
        return []

    config = _serve_standing_in(tmp_path, monkeypatch, migrate, stopped)
    caplog.set_level(logging.WARNING, logger=supervisor_module.__name__)
    assert serve_module.serve(config) == 0
    assert stopped == ["migrations finished", "embedded databases"]
    assert "remit is running" not in capsys.readouterr().out
    assert [record.getMessage() for record in caplog.records] == [
        "stopping once the databases are started and migrated; send again to interrupt them"
    ]
