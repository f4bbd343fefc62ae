"""A process that exits while starting: the supervisor says which and with what code, and
whether it refused its settings (exit 2, which `remit serve` passes on) or failed."""

import os
import resource
import subprocess
import sys
import time

import pytest

from remit.readiness import READY_FD_ENV, signal_ready
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
    with pytest.raises(StartupError, match=f"core exited with code {code}") as raised:
        await_ready(child, time.monotonic() + 10)
    assert raised.value.exit_code == code
    assert raised.value.refused is refused
    assert child.ready_fd == -1  # closed: nothing else reads it


def test_a_readiness_pipe_past_descriptor_1024_is_waited_on() -> None:
    """select() refuses descriptors from 1024 on (a ValueError, not a StartupError, that
    would stop the whole platform); a supervisor restarting processes for long may be handed
    one."""
    limit, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = 1500
    if hard != resource.RLIM_INFINITY and hard <= high:
        pytest.skip(f"this process may open only {hard} descriptors")
    if limit != resource.RLIM_INFINITY and limit <= high:
        resource.setrlimit(resource.RLIMIT_NOFILE, (high + 1, hard))
    read_fd, write_fd = os.pipe()
    try:
        os.dup2(read_fd, high)
        os.write(write_fd, b"ready\n")
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            child = Child(role="core", process=process, ready_fd=high)
            await_ready(child, time.monotonic() + 10)
        finally:
            process.kill()
            process.wait()
        assert child.ready_fd == -1
    finally:
        os.close(read_fd)
        os.close(write_fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


def test_a_process_the_supervisor_stopped_waiting_for_still_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supervisor closes the readiness pipe when it stops waiting (asked to stop
    meanwhile): a process ready only then is stopped with the rest, not failed with a
    traceback."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    monkeypatch.setenv(READY_FD_ENV, str(write_fd))
    signal_ready()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(write_fd)  # closed all the same
