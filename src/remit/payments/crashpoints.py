"""A test-only crash switch: kill this process with SIGKILL right after a recovery point.

Set REMIT_CRASH_AFTER to a recovery point name (e.g. `attempt_created`) and
REMIT_CRASH_MARKER to a file path; the first time the point is reached, the marker is created
and the process kills itself, so the restarted process runs on normally.

Both are honoured only beside REMIT_CRASH_TESTING=1, which production never sets. A process
that finds either of them without it refuses to start (`check_crash_settings`), rather than
start and ignore them: one of them in a production environment is a leftover of a test setup,
a mistake best met at deploy time, when nothing is in flight, and not once the switch has been
copied over too and a core kills itself in the middle of payments. With the switch, a process
says at start, loudly, where it will kill itself.
"""

import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from remit.config import ConfigError

CRASH_AFTER_ENV: Final = "REMIT_CRASH_AFTER"
CRASH_MARKER_ENV: Final = "REMIT_CRASH_MARKER"
CRASH_TESTING_ENV: Final = "REMIT_CRASH_TESTING"


def crash_testing(environ: Mapping[str, str]) -> bool:
    """Whether the crash switch may be honoured at all: only in a test's processes."""
    return environ.get(CRASH_TESTING_ENV) == "1"


def check_crash_settings(environ: Mapping[str, str]) -> str | None:
    """Call as a process starts. A `ConfigError` when the crash settings are set without
    REMIT_CRASH_TESTING=1; else the warning to log when the switch is armed (None when not)."""
    given = [name for name in (CRASH_AFTER_ENV, CRASH_MARKER_ENV) if environ.get(name)]
    if not given:
        return None
    if not crash_testing(environ):
        raise ConfigError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set: a test setting "
            "that makes a process kill itself in the middle of a payment. Unset it; a test "
            f"that means it also sets {CRASH_TESTING_ENV}=1"
        )
    return (
        f"crash testing is on ({CRASH_TESTING_ENV}=1): this process kills itself with SIGKILL "
        f"right after the recovery point {environ.get(CRASH_AFTER_ENV)!r} unless "
        f"{environ.get(CRASH_MARKER_ENV)!r} exists; never run it so in production"
    )


def crash_after(point: str) -> None:
    if not crash_testing(os.environ):
        return
    wanted = os.environ.get(CRASH_AFTER_ENV)
    marker = os.environ.get(CRASH_MARKER_ENV)
    if wanted != point or not marker:
        return
    path = Path(marker)
    if path.exists():
        return
    path.write_text(point)
    os.kill(os.getpid(), signal.SIGKILL)
