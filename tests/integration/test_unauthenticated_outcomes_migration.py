"""Core migration 0036 gives the charges whose 3-D Secure challenge failed, or was answered after
it expired, the outcome the 3-D Secure service gives them since (never sent to the network), and
touches no other charge."""

from collections.abc import Iterator
from dataclasses import replace

import pytest
from psycopg.types.json import Jsonb

import remit.storage.batched_backfill
from remit.payments.charges import ChargeStatus
from remit.payments.never_authenticated import never_sent_outcome
from remit.payments.repository import charge_from_row
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.integration.test_abandoned_attempts_migration import (
    T0,
    Connection,
    _charge,
    _charges,
    _connect,
    _intent,
)
from tests.support.postgres import scratch_database

_BEFORE = "0035_ledger_post_plans"
_FILLING = "0036_unauthenticated_outcomes"
_RISK: dict[str, object] = {
    "action": "request_three_d_secure",
    "risk_level": "elevated",
    "risk_score": 70,
}


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remit.storage.batched_backfill, "BATCH_ROWS", 2)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "unauthenticated_outcomes") as url:
        yield url


def _failed_challenge(
    connection: Connection, name: str, challenge_status: str, *, json_null: bool = False
) -> None:
    """A payment whose challenge ended `challenge_status`, failed as before this revision: its
    charge failed with `payment_intent_authentication_failure` and no outcome."""
    challenge_id = f"tdsc_{name}"
    _intent(connection, f"pi_{name}", "requires_payment_method", f"ch_{name}")
    _charge(
        connection,
        f"ch_{name}",
        f"pi_{name}",
        status="failed",
        failure_code="payment_intent_authentication_failure",
        risk=_RISK,
        authentication={"requested": "any", "challenge_id": challenge_id, "result": "failed"},
    )
    if json_null:
        connection.execute(
            "UPDATE charges SET outcome = 'null'::jsonb WHERE id = %s", (f"ch_{name}",)
        )
    connection.execute(
        "INSERT INTO three_d_secure_challenges (id, account_id, payment_intent_id, charge_id, "
        "amount_minor, currency, brand, last4, status, created_at, expires_at, completed_at) "
        "VALUES (%s, 'acct_1', %s, %s, 1000, 'usd', 'visa', '4242', %s, %s, %s, %s)",
        (challenge_id, f"pi_{name}", f"ch_{name}", challenge_status, T0, T0, T0),
    )


def test_charges_of_failed_challenges_get_the_outcome_the_service_gives_them(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with _connect(scratch_core) as connection:
        _failed_challenge(connection, "failed", "failed")
        _failed_challenge(connection, "late", "expired", json_null=True)
        # A decline after a passed challenge has its outcome; a waiting attempt has none yet.
        _intent(connection, "pi_declined", "requires_payment_method", "ch_declined")
        _charge(connection, "ch_declined", "pi_declined", status="failed",
                failure_code="card_declined",
                authentication={"challenge_id": "tdsc_ok", "result": "authenticated"})  # fmt: skip
        connection.execute(
            "UPDATE charges SET outcome = %s WHERE id = 'ch_declined'",
            (Jsonb({"type": "issuer_declined", "network_status": "declined_by_network"}),),
        )
        _intent(connection, "pi_waiting", "requires_action", "ch_waiting")
        _charge(connection, "ch_waiting", "pi_waiting")
    before = _charges(scratch_core)

    upgrade("core", scratch_core, _FILLING)

    after = _charges(scratch_core)
    assert {charge_id for charge_id in after if after[charge_id] != before[charge_id]} == {
        "ch_failed",
        "ch_late",
    }
    for charge_id, why in (
        ("ch_failed", "the cardholder failed 3-D Secure authentication."),
        ("ch_late", "its 3-D Secure challenge expired before the cardholder answered it."),
    ):
        migrated = charge_from_row(after[charge_id])
        old = charge_from_row(before[charge_id])
        assert migrated.status is ChargeStatus.FAILED
        assert migrated == replace(
            old, outcome=never_sent_outcome(old, why), updated_at=migrated.updated_at
        ), charge_id
    assert dict(after["ch_failed"]["outcome"]) == {
        "type": "invalid",
        "network_status": "not_sent_to_network",
        "reason": None,
        "risk_level": "elevated",
        "risk_score": 70,
        "rule": None,
        "seller_message": "This payment was never sent to the card network: the cardholder "
        "failed 3-D Secure authentication.",
    }

    # Run again (an upgrade stopped after its last batch): nothing is written twice.
    with _connect(scratch_core) as connection:
        connection.execute("DELETE FROM alembic_version")
        connection.execute("INSERT INTO alembic_version VALUES (%s)", (_BEFORE,))
    upgrade("core", scratch_core, _FILLING)
    assert _charges(scratch_core) == after
