"""How a child process and `remit serve` keep track of each other.

A child reports readiness with one line on an inherited pipe, and asks the kernel to send it
SIGTERM when the supervisor dies, so that no process is left behind whatever happens to it.
"""

import ctypes
import os
import signal

READY_FD_ENV = "REMIT_READY_FD"
PARENT_PID_ENV = "REMIT_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def follow_parent() -> None:
    """Under a supervisor: die with it. Call first thing in a child process."""
    raw = os.environ.pop(PARENT_PID_ENV, None)
    if raw is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor may have died between fork and prctl; then no signal will ever come.
    if os.getppid() != int(raw):
        raise SystemExit(0)


def signal_ready() -> None:
    """Tell the supervisor (if any) that this process is serving. Safe to call when alone."""
    raw = os.environ.pop(READY_FD_ENV, None)
    if raw is None:
        return
    fd = int(raw)
    try:
        os.write(fd, b"ready\n")
    except BrokenPipeError:
        # The supervisor stopped waiting (it is stopping, or gave this start up and is about
        # to kill it): no one to tell, and no reason to fail a start for it.
        pass
    finally:
        os.close(fd)
