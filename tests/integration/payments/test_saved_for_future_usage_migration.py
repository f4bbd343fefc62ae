"""Core migration 0081: a payment method spent before it by an intent without a customer that
went through with `setup_future_usage` may be attached afterwards; every other spent one stays
spent. The downgrade drops the column."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0080_canceled_payout_failures"
_AFTER = "0081_pm_saved_for_future_usage"
T0 = datetime(2026, 11, 1, tzinfo=UTC)

Connection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "saved_for_future_usage") as url:
        upgrade("core", url, _BEFORE)
        yield url


def _spent(
    connection: Connection,
    name: str,
    *,
    status: str = "succeeded",
    setup_future_usage: str | None = "off_session",
    customer_id: str | None = None,
    paid_with_it: bool = True,
    method_customer_id: str | None = None,
) -> None:
    """The payment method pm_<name>, spent by the intent pi_<name>."""
    connection.execute(
        "INSERT INTO payment_intents (id, account_id, amount_minor, currency, status, "
        "capture_method, confirmation_method, client_secret, metadata, amount_capturable_minor, "
        "amount_received_minor, created_at, updated_at, customer_id, payment_method_id, "
        "setup_future_usage) VALUES (%s, 'acct_1', 1000, 'usd', %s, 'automatic', 'automatic', "
        "'secret', '{}', 0, 0, %s, %s, %s, %s, %s)",
        (
            f"pi_{name}",
            status,
            T0,
            T0,
            customer_id,
            f"pm_{name}" if paid_with_it else "pm_other",
            setup_future_usage,
        ),
    )
    connection.execute(
        "INSERT INTO payment_methods (id, account_id, vault_token, brand, last4, exp_month, "
        "exp_year, fingerprint, funding, billing_details, metadata, created_at, customer_id, "
        "spent_by_intent_id) VALUES (%s, 'acct_1', 'vt', 'visa', '4242', 12, 2034, 'fp', "
        "'credit', '{}', '{}', %s, %s, %s)",
        (f"pm_{name}", T0, method_customer_id, f"pi_{name}"),
    )


def test_cards_spent_by_a_guest_payment_that_saved_them_may_be_attached(
    scratch_core: str,
) -> None:
    with psycopg.connect(scratch_core) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        _spent(connection, "paid")
        _spent(connection, "authorized", status="requires_capture", setup_future_usage="on_session")
        _spent(connection, "plain", setup_future_usage=None)
        _spent(connection, "declined", status="requires_payment_method")
        _spent(connection, "canceled", status="canceled")
        _spent(connection, "paid_with_another", paid_with_it=False)
        _spent(connection, "of_a_customer", customer_id="cus_1")
        _spent(connection, "attached_since", method_customer_id="cus_2")

    upgrade("core", scratch_core, _AFTER)

    with psycopg.connect(scratch_core) as connection:
        saved = connection.execute(
            "SELECT id FROM payment_methods WHERE saved_for_future_usage ORDER BY id"
        ).fetchall()
    assert saved == [("pm_authorized",), ("pm_paid",)]


def test_the_downgrade_drops_the_column(scratch_core: str) -> None:
    upgrade("core", scratch_core, _AFTER)
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        columns = {
            row[0]
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'payment_methods'"
            )
        }
    assert "saved_for_future_usage" not in columns
    assert "spent_by_intent_id" in columns
