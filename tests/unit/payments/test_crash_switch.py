"""The crash switch of the crash-recovery tests never fires by accident in production: it is
honoured only beside REMIT_CRASH_TESTING=1, and a process that finds it without that refuses
to start."""

import os
import signal

import pytest

from remit.config import ConfigError
from remit.payments.crashpoints import check_crash_settings, crash_after


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append((pid, sig)))
    return killed


def test_the_switch_without_test_mode_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str], kills: list[tuple[int, int]]
) -> None:
    marker = f"{tmp_path}/crashed"
    monkeypatch.setenv("REMIT_CRASH_AFTER", "attempt_created")
    monkeypatch.setenv("REMIT_CRASH_MARKER", marker)
    monkeypatch.delenv("REMIT_CRASH_TESTING", raising=False)
    crash_after("attempt_created")
    assert kills == []
    assert not os.path.exists(marker)


def test_the_switch_in_test_mode_kills_the_process_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str], kills: list[tuple[int, int]]
) -> None:
    marker = f"{tmp_path}/crashed"
    monkeypatch.setenv("REMIT_CRASH_AFTER", "attempt_created")
    monkeypatch.setenv("REMIT_CRASH_MARKER", marker)
    monkeypatch.setenv("REMIT_CRASH_TESTING", "1")
    crash_after("started")
    crash_after("attempt_created")
    crash_after("attempt_created")  # the restarted process finds the marker
    assert kills == [(os.getpid(), signal.SIGKILL)]


@pytest.mark.parametrize(
    ("environ", "named"),
    [({"REMIT_CRASH_AFTER": "started"}, "REMIT_CRASH_AFTER is set"),
     ({"REMIT_CRASH_MARKER": "/tmp/m"}, "REMIT_CRASH_MARKER is set"),
     ({"REMIT_CRASH_AFTER": "started", "REMIT_CRASH_MARKER": "/tmp/m",
       "REMIT_CRASH_TESTING": "yes"}, "REMIT_CRASH_AFTER and REMIT_CRASH_MARKER are set")],
)  # fmt: skip
def test_a_process_refuses_to_start_with_the_switch_outside_test_mode(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_crash_settings(environ)
    assert str(refused.value).startswith(named)
    assert "REMIT_CRASH_TESTING=1" in str(refused.value)


def test_a_process_in_test_mode_says_where_it_will_kill_itself() -> None:
    assert check_crash_settings({}) is None
    assert check_crash_settings({"REMIT_CRASH_TESTING": "1"}) is None
    warning = check_crash_settings(
        {"REMIT_CRASH_AFTER": "finished", "REMIT_CRASH_MARKER": "/tmp/m",
         "REMIT_CRASH_TESTING": "1"}
    )  # fmt: skip
    assert warning is not None
    assert "kills itself with SIGKILL right after the recovery point 'finished'" in warning
