"""Which signals stop `remit serve`: a SIGHUP ignored when it started (`nohup remit serve &`)
stays ignored, so the platform outlives the terminal it was started from; otherwise SIGHUP
stops it in order, as SIGTERM and SIGINT do."""

import signal
import subprocess
import sys

import pytest

# Run in a process of its own: the handlers are the process's, and pytest's own must stay.
_DISPOSITIONS = """
import signal
from remit.supervisor import install_stop_handlers

class Stub:
    def request_stop(self, signum, frame):
        pass

install_stop_handlers(Stub())
for stop_signal in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    handler = signal.getsignal(stop_signal)
    ignored = handler == signal.SIG_IGN
    print(stop_signal.name, "ignored" if ignored else getattr(handler, "__name__", handler))
"""


def _dispositions(*, sighup_ignored: bool) -> dict[str, str]:
    # Set either way: a test run started under `nohup` hands its children an ignored SIGHUP.
    def set_sighup() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN if sighup_ignored else signal.SIG_DFL)

    ran = subprocess.run(
        [sys.executable, "-c", _DISPOSITIONS],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=set_sighup,
        timeout=60,
    )
    return dict(line.split(" ", 1) for line in ran.stdout.splitlines())


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_sighup_ignored_at_start_stays_ignored() -> None:
    assert _dispositions(sighup_ignored=True) == {
        "SIGHUP": "ignored",
        "SIGTERM": "request_stop",
        "SIGINT": "request_stop",
    }


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_sighup_not_ignored_stops_in_order() -> None:
    assert _dispositions(sighup_ignored=False) == {
        "SIGHUP": "request_stop",
        "SIGTERM": "request_stop",
        "SIGINT": "request_stop",
    }
