"""`remit serve` asked to stop while its embedded PostgreSQL starts: its stop handlers are in
before the first cluster starts, so a SIGTERM then (Python's default would end the process at
once) stops what was started, starts nothing more, and exits 0, leaving no server
running."""

import asyncio
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.support.commands import start_remit

pytestmark = pytest.mark.anyio


def _processes_on(data_dir: Path) -> list[psutil.Process]:
    """The processes whose command line names a path under `data_dir`: its clusters'."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def _wait_for_processes_on(data_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while not _processes_on(data_dir) and time.monotonic() < deadline:
        time.sleep(0.01)


# SIGHUP (the terminal running `make run` or `remit serve` closed) is handled by the same
# `request_stop` (tests/unit/supervisor/test_stop_signals.py): one signal here is enough for
# this test, whose moment of stopping depends on the machine's load.
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM], ids=["TERM"])
async def test_a_stop_signal_while_the_embedded_postgresql_starts_leaves_none_running(
    stop_signal: signal.Signals, tmp_path: Path
) -> None:
    serve = await start_remit("serve", "--api-port", "0", tmp_path=tmp_path, DATABASE_URL="",
                              ACQUIRER_DATABASE_URL="", VAULT_DATABASE_URL="")  # fmt: skip
    # As early as can be seen from outside: the first cluster's initdb or server under way.
    await asyncio.to_thread(_wait_for_processes_on, tmp_path / "pg-core")
    serve.send_signal(stop_signal)
    _, err = await asyncio.wait_for(serve.communicate(), 60)

    assert serve.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert _processes_on(tmp_path) == []
    assert not (tmp_path / "pg-core" / "postmaster.pid").exists()
    # Asked to stop, it started no further cluster.
    assert not (tmp_path / "pg-vault").exists()
