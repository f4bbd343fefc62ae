"""Core migration 0076 gives each attempt of a delivery a number of its own: the attempts of a
delivery where two shared a number are numbered again in the order they were made, those of
other deliveries are left as they were, and a unique index refuses a shared number from then
on. Its downgrade puts the index by delivery back."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

BEFORE = "0075_webhook_pending_by_endpoint"
AFTER = "0076_webhook_attempt_numbers"
UNIQUE = "ux_webhook_delivery_attempts_number"
BY_DELIVERY = "ix_webhook_delivery_attempts_delivery_id"
T0 = datetime(2026, 3, 1, tzinfo=UTC)

ATTEMPTS = [
    # (id, delivery, number stored, seconds after T0)
    # The worker's 1, a resend's 2, then the worker's retry, numbered 2 by its job.
    ("del_a1", 1, 1, 0),
    ("del_a3", 1, 2, 600),
    ("del_a2", 1, 2, 60),
    # A redelivery started the delivery over: its attempt 1 again.
    ("del_b1", 2, 1, 0),
    ("del_b2", 2, 1, 900),
    # Numbers of their own: left as they are, a gap included.
    ("del_c1", 3, 1, 0),
    ("del_c3", 3, 3, 300),
]


@pytest.fixture
def before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "webhook_attempt_numbers") as url:
        upgrade("core", url, BEFORE)
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            connection.execute(
                "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, "
                "status, secret, created_at) VALUES ('we_1', 'acct_1', 'https://example.com', "
                "'[\"*\"]', '{}', 'enabled', 'whsec_1', now())"
            )
            for delivery in (1, 2, 3):
                connection.execute(
                    "INSERT INTO events (id, account_id, type, created_at, livemode, "
                    "data_object) VALUES (%s, 'acct_1', 'customer.created', now(), false, '{}')",
                    (f"evt_{delivery}",),
                )
                connection.execute(
                    "INSERT INTO webhook_deliveries (id, account_id, event_id, endpoint_id, "
                    "status, first_attempt_at) VALUES (%s, 'acct_1', %s, 'we_1', 'pending', "
                    "now())",
                    (delivery, f"evt_{delivery}"),
                )
            for attempt_id, delivery, number, seconds in ATTEMPTS:
                connection.execute(
                    "INSERT INTO webhook_delivery_attempts (id, delivery_id, account_id, "
                    "event_id, endpoint_id, attempted_at, latency_ms, response_snippet, "
                    "attempt_number, succeeded) VALUES (%s, %s, 'acct_1', %s, 'we_1', %s, 5, "
                    "'', %s, false)",
                    (attempt_id, delivery, f"evt_{delivery}", T0 + timedelta(seconds=seconds),
                     number),
                )  # fmt: skip
        yield url


def _numbers(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, attempt_number FROM webhook_delivery_attempts")
        return {str(row[0]): int(row[1]) for row in rows}


def _indexes(url: str) -> dict[str, bool]:
    """The attempts' indexes on delivery_id: whether each is valid and unique."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT c.relname, i.indisvalid AND i.indisunique FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'webhook_delivery_attempts'::regclass AND c.relname IN (%s, %s)",
            (UNIQUE, BY_DELIVERY),
        )
        return {str(row[0]): bool(row[1]) for row in rows}


def test_shared_numbers_are_numbered_again_in_the_order_made_and_refused_after(
    before: str,
) -> None:
    upgrade("core", before, AFTER)

    assert _numbers(before) == {
        "del_a1": 1, "del_a2": 2, "del_a3": 3,
        "del_b1": 1, "del_b2": 2,
        "del_c1": 1, "del_c3": 3,
    }  # fmt: skip
    assert _indexes(before) == {UNIQUE: True}
    with psycopg.connect(before) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        connection.execute(
            "INSERT INTO webhook_delivery_attempts (id, delivery_id, account_id, event_id, "
            "endpoint_id, attempted_at, latency_ms, response_snippet, attempt_number, "
            "succeeded) VALUES ('del_c3_again', 3, 'acct_1', 'evt_3', 'we_1', now(), 5, '', 3, "
            "false)"
        )


def test_the_downgrade_puts_the_index_by_delivery_back(before: str) -> None:
    upgrade("core", before, AFTER)
    command.downgrade(alembic_config("core", before), BEFORE)

    assert _indexes(before) == {BY_DELIVERY: False}
    assert _numbers(before)["del_b2"] == 2
