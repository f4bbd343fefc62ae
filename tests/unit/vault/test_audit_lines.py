"""`remit vault audit` prints one line per event whatever its caller named: the requester, the
purpose and the reference are quoted with their control characters and line separators escaped,
and an account, token or destination that is no plain name is quoted too, so that no event
recorded before the vault refused such characters can print as a forged one."""

import json

import pytest
from google.protobuf import timestamp_pb2

from remit.core.jsonview import enum_numbers
from remit.vault.admin import audit_event_line
from remit.vault.audit_arguments import AUDIT_ACTIONS, AuditQuery
from remit_api.vault.v1 import vault_pb2

FORGED = 'core\n2026-01-02T03:04:05+00:00  vae_forged  forward  succeeded  by "core"'


def _event(**fields: object) -> vault_pb2.AuditEvent:
    event = vault_pb2.AuditEvent(
        id="vae_1",
        created=timestamp_pb2.Timestamp(seconds=1_767_225_600),
        action=vault_pb2.AUDIT_ACTION_FORWARD,
        requester="core",
        purpose="payment_intent.confirm pi_1",
        succeeded=True,
    )
    for name, value in fields.items():
        setattr(event, name, value)
    return event


def test_an_event_prints_what_it_names_and_nothing_it_does_not() -> None:
    assert audit_event_line(_event()) == (
        '2026-01-01T00:00:00+00:00  vae_1  forward  succeeded  by "core"  '
        'purpose "payment_intent.confirm pi_1"'
    )
    full = _event(
        account_id="acct_1", vault_token="vtok_1", destination="acquirer", reference="ch_1",
        key_version=3, succeeded=False,
    )  # fmt: skip
    assert audit_event_line(full) == (
        '2026-01-01T00:00:00+00:00  vae_1  forward  failed  by "core"  '
        'purpose "payment_intent.confirm pi_1"  account acct_1  token vtok_1  '
        'destination acquirer  reference "ch_1"  key version 3'
    )


@pytest.mark.parametrize("field", ["requester", "purpose", "reference"])
def test_what_a_caller_named_with_a_line_break_prints_one_quoted_line(field: str) -> None:
    line = audit_event_line(_event(**{field: FORGED}))
    assert line.splitlines() == [line]
    assert json.dumps(FORGED) in line


@pytest.mark.parametrize("field", ["account_id", "vault_token", "destination"])
@pytest.mark.parametrize("value", ["acct 1", "acct_1\n", "acct_1\x1b[2J", 'acct_"1'])
def test_an_id_that_is_no_plain_name_is_quoted(field: str, value: str) -> None:
    line = audit_event_line(_event(**{field: value}))
    assert line.splitlines() == [line]
    assert line.endswith(json.dumps(value))
    assert "\x1b" not in line


def test_an_action_a_newer_vault_records_is_shown_by_its_number() -> None:
    assert "  action 99  succeeded  " in audit_event_line(_event(action=99))


def test_the_actions_offered_are_the_protos() -> None:
    assert sorted(AUDIT_ACTIONS) == sorted(enum_numbers(vault_pb2.AuditAction.DESCRIPTOR))


def test_the_next_page_is_asked_for_with_the_same_filters() -> None:
    query = AuditQuery(limit=5, account="acct_1", action="forward", since="2026-01-01")
    assert query.filter_flags() == [
        "--account", "acct_1", "--action", "forward", "--since", "2026-01-01", "--limit", "5",
    ]  # fmt: skip
    assert AuditQuery().filter_flags() == ["--limit", "20"]
