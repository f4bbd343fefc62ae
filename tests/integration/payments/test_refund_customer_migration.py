"""Core migration 0028: refunds made before it take their charge's customer and payment method,
and it downgrades cleanly."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0027_payouts_due"
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "refund_customer") as url:
        upgrade("core", url)
        yield url


def _charge(connection: Connection, charge_id: str, customer_id: str | None) -> None:
    connection.execute(
        "INSERT INTO charges (id, account_id, payment_intent_id, amount_minor, "
        "amount_captured_minor, amount_refunded_minor, currency, status, captured, "
        "capture_requested, payment_method_id, customer_id, card, metadata, created_at, "
        "updated_at) VALUES (%s, 'acct_1', %s, 1000, 1000, 100, 'usd', 'succeeded', true, "
        "true, %s, %s, '{}', '{}', %s, %s)",
        (charge_id, f"pi_{charge_id}", f"pm_{charge_id}", customer_id, T0, T0),
    )


def _refund(connection: Connection, refund_id: str, charge_id: str) -> None:
    connection.execute(
        "INSERT INTO refunds (id, account_id, charge_id, payment_intent_id, amount_minor, "
        "currency, status, metadata, created_at, updated_at) VALUES (%s, 'acct_1', %s, %s, "
        "100, 'usd', 'succeeded', '{}', %s, %s)",
        (refund_id, charge_id, f"pi_{charge_id}", T0, T0),
    )


def test_earlier_refunds_take_their_charges_customer_and_payment_method(
    scratch_core: str,
) -> None:
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        _charge(connection, "ch_saved", "cus_1")
        _refund(connection, "re_saved", "ch_saved")
        _charge(connection, "ch_guest", None)
        _refund(connection, "re_guest", "ch_guest")

    upgrade("core", scratch_core)

    with psycopg.connect(scratch_core) as connection:
        rows = connection.execute(
            "SELECT id, customer_id, payment_method_id FROM refunds ORDER BY id"
        ).fetchall()
    assert rows == [("re_guest", None, "pm_ch_guest"), ("re_saved", "cus_1", "pm_ch_saved")]


def test_the_migration_downgrades_cleanly(scratch_core: str) -> None:
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        columns = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'refunds'"
            )
        }
    assert {"customer_id", "payment_method_id"}.isdisjoint(columns)
