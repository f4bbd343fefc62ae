"""`remit accounts keys audit` prints one line per event whatever its caller named: the operator
and the reason are quoted with their control characters and line separators escaped, so that no
operator (a login name from the environment, a gRPC caller's) can print a forged event. The
operator a key command names is the login name of its uid, never the environment's claim."""

import getpass
import json
import os
import pwd
import socket

import pytest
from google.protobuf import timestamp_pb2

from remit.accounts.key_commands import audit_line
from remit.core.shell_operator import shell_operator
from remit_api.accounts.v1 import accounts_pb2

# A login name (USER, LOGNAME) set to a line that reads as another event.
FORGED = (
    "alice@ops-1)\n2026-01-02T03:04:05+00:00  kevt_forged  key_forged (sk_live_...4242)  "
    "revoked at never  by admin (bob@ops-2"
)


def _event(operator: str, reason: str = "") -> accounts_pb2.ApiKeyEvent:
    return accounts_pb2.ApiKeyEvent(
        id="kevt_1",
        created=timestamp_pb2.Timestamp(seconds=1_767_225_600),
        key_id="key_1",
        masked_key="sk_test_...abcd",
        action=accounts_pb2.API_KEY_EVENT_ACTION_REVOKED,
        role="admin",
        operator=operator,
        reason=reason,
    )


def test_an_operator_with_a_line_break_prints_one_line() -> None:
    line = audit_line(_event(FORGED))
    assert line.splitlines() == [line]
    assert "kevt_forged" in line  # shown, escaped, as the operator it is
    forged = json.dumps(FORGED)
    assert forged.count("\\n") == 1
    assert line.endswith(f"by admin ({forged})")


@pytest.mark.parametrize(
    ("breaking", "escaped"),
    [
        ("\r", "\\r"),
        ("\x0b", "\\u000b"),
        ("\x1b", "\\u001b"),  # an escape sequence's start
        ("\x7f", "\\u007f"),
        ("\x85", "\\u0085"),
        ("\x9b", "\\u009b"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ],
    ids=repr,
)
def test_no_control_character_or_line_separator_is_printed_raw(breaking: str, escaped: str) -> None:
    """JSON leaves DEL, the C1 controls and the Unicode line separators as they are: they are
    escaped too."""
    line = audit_line(_event(f"alice{breaking}x", reason=f"why{breaking}y"))
    assert line.splitlines() == [line]
    assert breaking not in line
    assert line.endswith(f'by admin ("alice{escaped}x")  reason "why{escaped}y"')


def test_plain_names_and_reasons_print_as_they_are_but_quoted() -> None:
    line = audit_line(_event("alice@ops-1", reason='for the "web" app, café'))
    assert line.endswith('by admin ("alice@ops-1")  reason "for the \\"web\\" app, café"')


def test_the_operator_is_the_uids_login_name_not_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, FORGED)
    name = pwd.getpwuid(os.getuid()).pw_name
    assert shell_operator() == f"{name}@{socket.gethostname()}"


def test_a_uid_with_no_passwd_entry_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    monkeypatch.setenv("LOGNAME", "carol")
    assert shell_operator() == f"carol@{socket.gethostname()}"
    assert getpass.getuser() == "carol"
