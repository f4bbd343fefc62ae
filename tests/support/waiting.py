"""Waiting for something a separate process does, within a deadline."""

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool],
    timeout_s: float,
    explain: Callable[[], str] = lambda: "",
    *,
    every_s: float = 0.1,
) -> None:
    """Return once `condition()` holds; fail after `timeout_s` with what `explain()` says (a
    log, say)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"condition not reached within {timeout_s:.0f}s\n{explain()}")
