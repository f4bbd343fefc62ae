"""A process that exits while starting: the supervisor says which and with what code, and
whether it refused its settings (exit 2, which `remit serve` passes on) or failed."""

import os
import subprocess
import sys
import time

import pytest

from remit.supervisor import Child, StartupError, await_ready


def _child_exiting_with(code: int) -> Child:
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    os.close(write_fd)
    process.wait()
    return Child(role="core", process=process, ready_fd=read_fd)


@pytest.mark.parametrize(("code", "refused"), [(2, True), (1, False), (3, False)])
def test_a_process_that_exits_while_starting_says_whether_it_refused(
    code: int, refused: bool
) -> None:
    child = _child_exiting_with(code)
    try:
        with pytest.raises(StartupError, match=f"core exited with code {code}") as raised:
            await_ready(child, time.monotonic() + 10)
    finally:
        os.close(child.ready_fd)
    assert raised.value.exit_code == code
    assert raised.value.refused is refused
