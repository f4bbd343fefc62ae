"""`remit serve` and each process refuse to start, in one line and exit 2, with the test-only
crash switch set and no REMIT_CRASH_TESTING=1 (`remit.payments.crashpoints`)."""

from pathlib import Path

import pytest

from tests.support.commands import remit

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("command", ["serve", "core", "worker"])
async def test_the_crash_switch_left_in_production_stops_the_start(
    command: str, tmp_path: Path
) -> None:
    ran = await remit(command, tmp_path=tmp_path, REMIT_CRASH_AFTER="attempt_created",
                      REMIT_CRASH_MARKER=str(tmp_path / "crashed"))  # fmt: skip
    assert ran.returncode == 2
    line = ran.failure_line()
    assert "REMIT_CRASH_AFTER and REMIT_CRASH_MARKER are set" in line
    assert "REMIT_CRASH_TESTING=1" in line
