"""A test-only crash switch: kill this process with SIGKILL right after a recovery point.

Set REMIT_CRASH_AFTER to a recovery point name (e.g. `attempt_created`) and
REMIT_CRASH_MARKER to a file path; the first time the point is reached, the marker is created
and the process kills itself, so the restarted process runs on normally. Without both variables
this does nothing; production never sets them.
"""

import os
import signal
from pathlib import Path


def crash_after(point: str) -> None:
    wanted = os.environ.get("REMIT_CRASH_AFTER")
    marker = os.environ.get("REMIT_CRASH_MARKER")
    if wanted != point or not marker:
        return
    path = Path(marker)
    if path.exists():
        return
    path.write_text(point)
    os.kill(os.getpid(), signal.SIGKILL)
