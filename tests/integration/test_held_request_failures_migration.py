"""Core migration 0049 gives idempotency keys the completer's tries and latest failure: keys
stored before it, a held one among them, start with no try counted and no failure, keep
everything else, and the completer's writes fit; the downgrade takes the columns away again and
leaves the keys."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0048_idempotency_key_account"
_AFTER = "0049_held_request_failures"
BEGAN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_ADDED = {
    "completer_attempts",
    "last_failure_at",
    "last_failure_code",
    "last_failure_message",
    "last_failure_reference",
    "last_failure_operation",
    "last_failure_fields",
}


@pytest.fixture
def database_before(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "held_request_failures") as url:
        upgrade("core", url, _BEFORE)
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(
                "INSERT INTO accounts (id, created_at, default_currency, raw_card_access, "
                "fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts, "
                "radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true)"
            )
            for key, point in (("held", "attempt_created"), ("done", "finished")):
                db.execute(
                    "INSERT INTO idempotency_keys (account_id, key, endpoint, request_digest, "
                    "request_body, recovery_point, charge_id, created_at, last_run_at, owner) "
                    "VALUES ('acct_1', %s, 'CapturePaymentIntent', '\\x00', '\\x00', %s, "
                    "'ch_1', %s, %s, 'o')",
                    (key, point, BEGAN, BEGAN),
                )
        yield url


def _columns(url: str) -> set[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'idempotency_keys'"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_keys_stored_before_have_no_try_counted_and_the_downgrade_removes_the_columns(
    database_before: str,
) -> None:
    url = database_before
    upgrade("core", url, _AFTER)
    with psycopg.connect(url, autocommit=True) as db:
        found = db.execute(
            "SELECT key, recovery_point, charge_id, created_at, completer_attempts, "
            "last_failure_at, last_failure_code, last_failure_fields FROM idempotency_keys "
            "ORDER BY key"
        ).fetchall()
        assert found == [
            ("done", "finished", "ch_1", BEGAN, 0, None, None, None),
            ("held", "attempt_created", "ch_1", BEGAN, 0, None, None, None),
        ]
        # What the completer writes once it tries the held key.
        db.execute(
            "UPDATE idempotency_keys SET completer_attempts = completer_attempts + 1, "
            "last_failure_at = now(), last_failure_code = 'network_record_mismatch', "
            "last_failure_fields = ARRAY['amount', 'currency'] WHERE key = 'held'"
        )
        row = db.execute(
            "SELECT completer_attempts, last_failure_fields FROM idempotency_keys "
            "WHERE key = 'held'"
        ).fetchone()
        assert row == (1, ["amount", "currency"])

    command.downgrade(alembic_config("core", url), _BEFORE)
    assert _columns(url).isdisjoint(_ADDED)
    with psycopg.connect(url) as db:
        keys = db.execute("SELECT key, recovery_point FROM idempotency_keys ORDER BY key")
        assert keys.fetchall() == [("done", "finished"), ("held", "attempt_created")]
