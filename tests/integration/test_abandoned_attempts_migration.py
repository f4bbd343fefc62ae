"""Core migration 0032 fails the charges that intents left pending before they finished, as the
payments service fails them since (`remit.payments.abandoned_attempts`), and only those; in
batches, finishing the rest when an interrupted upgrade runs again."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

import remit.storage.batched_backfill
from remit.payments.abandoned_attempts import LeftBy, abandoned
from remit.payments.repository import charge_from_row
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0031_reconcile_network_fees"
_FINISHING = "0032_abandoned_attempts"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
_RISK: dict[str, object] = {
    "action": "request_three_d_secure",
    "risk_level": "elevated",
    "risk_score": 70,
}
_WAITING: dict[str, object] = {"requested": "any", "challenge_id": "tdsc_1", "result": None}
_AUTHENTICATED: dict[str, object] = {
    "requested": "any",
    "challenge_id": "tdsc_1",
    "result": "authenticated",
}

Connection = psycopg.Connection[dict[str, Any]]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remit.storage.batched_backfill, "BATCH_ROWS", 20)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "abandoned_attempts") as url:
        yield url


def _connect(url: str) -> Connection:
    connection = psycopg.connect(url, row_factory=dict_row)
    connection.execute("SET session_replication_role = replica")  # rows without parents
    return connection


def _intent(
    connection: Connection,
    intent_id: str,
    status: str,
    latest_charge: str,
    *,
    amount: int = 1000,
    payment_method: str = "pm_1",
) -> None:
    connection.execute(
        "INSERT INTO payment_intents (id, account_id, amount_minor, currency, status, "
        "capture_method, confirmation_method, client_secret, metadata, payment_method_id, "
        "amount_capturable_minor, amount_received_minor, latest_charge_id, created_at, "
        "updated_at) VALUES (%s, 'acct_1', %s, 'usd', %s, 'automatic', 'manual', 'secret', "
        "'{}', %s, 0, 0, %s, %s, %s)",
        (intent_id, amount, status, payment_method, latest_charge, T0, T0),
    )


def _charge(
    connection: Connection,
    charge_id: str,
    intent_id: str,
    *,
    status: str = "pending",
    authentication: dict[str, object] | None = None,
    risk: dict[str, object] | None = None,
    failure_code: str | None = None,
) -> None:
    connection.execute(
        "INSERT INTO charges (id, account_id, payment_intent_id, amount_minor, "
        "amount_captured_minor, amount_refunded_minor, currency, status, captured, "
        "capture_requested, payment_method_id, card, metadata, risk, authentication, "
        "failure_code, created_at, updated_at) VALUES (%s, 'acct_1', %s, 1000, 0, 0, 'usd', %s, "
        "false, false, 'pm_1', %s, '{}', %s, %s, %s, %s, %s)",
        (
            charge_id,
            intent_id,
            status,
            Jsonb({"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}),
            None if risk is None else Jsonb(risk),
            Jsonb(authentication or _WAITING),
            failure_code,
            T0,
            T0,
        ),
    )


# Columns later migrations add to charges, with what those migrations give the rows stored
# before them: `charge_from_row` reads today's columns from rows of this older schema.
_ADDED_SINCE: dict[str, Any] = {
    "capture_attempts": 1,
    "authorized_at": None,
    "dispute_id": None,
}


def _charges(url: str) -> dict[str, dict[str, Any]]:
    with _connect(url) as connection:
        rows = connection.execute("SELECT * FROM charges ORDER BY id").fetchall()
    return {str(row["id"]): {**_ADDED_SINCE, **row} for row in rows}


def _statuses(url: str) -> dict[str, str]:
    return {charge_id: row["status"] for charge_id, row in _charges(url).items()}


def test_only_charges_their_intent_left_behind_are_failed_as_the_service_fails_them(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with _connect(scratch_core) as connection:
        # Left behind.
        _intent(connection, "pi_canceled", "canceled", "ch_canceled")
        _charge(connection, "ch_canceled", "pi_canceled", risk=_RISK)
        _intent(connection, "pi_replaced", "succeeded", "ch_new")
        _charge(connection, "ch_replaced", "pi_replaced", authentication=_AUTHENTICATED)
        _charge(connection, "ch_new", "pi_replaced", status="succeeded")
        _intent(connection, "pi_updated", "requires_confirmation", "ch_updated")
        _charge(connection, "ch_updated", "pi_updated")
        _intent(connection, "pi_repriced", "requires_confirmation", "ch_repriced", amount=3000)
        _charge(connection, "ch_repriced", "pi_repriced", authentication=_AUTHENTICATED)
        _intent(connection, "pi_recarded", "requires_confirmation", "ch_recarded",
                payment_method="pm_2")  # fmt: skip
        _charge(connection, "ch_recarded", "pi_recarded", authentication=_AUTHENTICATED)
        # Still waiting, at the network, or finished: left alone.
        _intent(connection, "pi_waiting", "requires_action", "ch_waiting")
        _charge(connection, "ch_waiting", "pi_waiting")
        _intent(connection, "pi_to_confirm", "requires_confirmation", "ch_to_confirm")
        _charge(connection, "ch_to_confirm", "pi_to_confirm", authentication=_AUTHENTICATED)
        _intent(connection, "pi_processing", "processing", "ch_processing")
        _charge(connection, "ch_processing", "pi_processing")
        _intent(connection, "pi_declined", "requires_payment_method", "ch_declined")
        _charge(connection, "ch_declined", "pi_declined", status="failed",
                failure_code="card_declined")  # fmt: skip
    before = _charges(scratch_core)

    upgrade("core", scratch_core, _FINISHING)

    after = _charges(scratch_core)
    assert {charge_id for charge_id in after if after[charge_id] != before[charge_id]} == {
        "ch_canceled",
        "ch_replaced",
        "ch_updated",
        "ch_repriced",
        "ch_recarded",
    }
    # Exactly what the payments service writes for each (bar the time of the change).
    for charge_id, left_by in (
        ("ch_canceled", LeftBy.CANCELED),
        ("ch_replaced", LeftBy.CONFIRMED_AGAIN),
        ("ch_updated", LeftBy.UPDATED),
        ("ch_repriced", LeftBy.UPDATED),
        ("ch_recarded", LeftBy.UPDATED),
    ):
        migrated = charge_from_row(after[charge_id])
        expected = abandoned(charge_from_row(before[charge_id]), left_by, migrated.updated_at)
        assert migrated == expected, charge_id
    assert dict(after["ch_canceled"]["outcome"]) == {
        "type": "invalid",
        "network_status": "not_sent_to_network",
        "reason": None,
        "risk_level": "elevated",
        "risk_score": 70,
        "rule": None,
        "seller_message": "This payment was never sent to the card network: the PaymentIntent "
        "was canceled before it was completed.",
    }
    assert after["ch_replaced"]["failure_code"] == "payment_intent_payment_attempt_failed"
    assert after["ch_updated"]["failure_code"] == "payment_intent_authentication_failure"


def test_an_interrupted_upgrade_finishes_the_rest_when_run_again(scratch_core: str) -> None:
    upgrade("core", scratch_core, _BEFORE)
    ids = [f"ch_{n:03d}" for n in range(50)]
    with _connect(scratch_core) as connection:
        for charge_id in ids:
            _intent(connection, f"pi_{charge_id}", "canceled", charge_id)
            _charge(connection, charge_id, f"pi_{charge_id}")
        # The second batch fails at its first row.
        connection.execute(
            "CREATE FUNCTION interrupt() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'interrupted'; END $$"
        )
        connection.execute(
            "CREATE TRIGGER interrupt BEFORE UPDATE ON charges FOR EACH ROW "
            "WHEN (NEW.id = 'ch_030') EXECUTE FUNCTION interrupt()"
        )

    with pytest.raises(Exception, match="interrupted"):
        upgrade("core", scratch_core, _FINISHING)
    statuses = _statuses(scratch_core)
    assert [charge_id for charge_id in ids if statuses[charge_id] == "failed"] == ids[:20]
    finished_first = _charges(scratch_core)["ch_000"]

    with _connect(scratch_core) as connection:
        connection.execute("DROP TRIGGER interrupt ON charges")
    upgrade("core", scratch_core, _FINISHING)

    assert set(_statuses(scratch_core).values()) == {"failed"}
    # The first run's charges are not written again.
    assert _charges(scratch_core)["ch_000"] == finished_first
