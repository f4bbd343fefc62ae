"""Core migration 0068 indexes the pending webhook deliveries by due time, which the worker's
repair of deliveries left with no job reads them by, without reading every delivery kept; its
downgrade drops the index and leaves the deliveries."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from remit.webhooks.repair import REPAIR_BATCH, batch_params
from tests.support.postgres import scratch_database

_BEFORE = "0067_charge_authorized_at"
_AFTER = "0068_webhook_pending_due"
_INDEX = "ix_webhook_deliveries_pending_due"
_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

# An account, an endpoint, an event, and deliveries: `delivered` succeeded, one pending.
_ROWS = """
INSERT INTO accounts (id, created_at, default_currency, raw_card_access, fee_percent_bps,
                      fee_fixed_minor, available_delay_days, automatic_payouts, radar_enabled)
VALUES ('acct_1', %(at)s, 'usd', false, 290, 30, 2, false, true);
INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, status, secret,
                               created_at)
VALUES ('we_1', 'acct_1', 'https://example.com/hook', '["*"]', '{}', 'enabled', 'whsec_1',
        %(at)s);
INSERT INTO events (id, account_id, type, created_at, livemode, data_object)
SELECT 'evt_' || n, 'acct_1', 'customer.created', %(at)s, false, '{"object": "customer"}'
FROM generate_series(0, %(delivered)s) AS n;
INSERT INTO webhook_deliveries (account_id, event_id, endpoint_id, status, attempts,
                                first_attempt_at, next_attempt_at, finished_at)
SELECT 'acct_1', 'evt_' || n, 'we_1', CASE WHEN n = 0 THEN 'pending' ELSE 'succeeded' END,
       1, %(at)s, CASE WHEN n = 0 THEN %(at)s END, CASE WHEN n > 0 THEN %(at)s END
FROM generate_series(0, %(delivered)s) AS n;
ANALYZE webhook_deliveries
"""


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "webhook_pending_due") as url:
        yield url


def _index(url: str) -> tuple[str, bool] | None:
    """The index's definition and whether it is valid; None when there is none."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s)",
            (_INDEX,),
        ).fetchone()
    return None if row is None else (str(row[0]), bool(row[1]))


def repair_plan(url: str) -> str:
    """The plan of a repair's batch, as it runs (rolled back: EXPLAIN of a write plans it),
    with the column it reads that a later migration adds (0073), added in the same rolled-back
    transaction."""
    with psycopg.connect(url) as connection:
        connection.execute(
            "ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS give_up_failures integer"
            " NOT NULL DEFAULT 0"
        )
        rows = connection.execute(
            "EXPLAIN " + REPAIR_BATCH.sql, batch_params(_AT + timedelta(hours=1))
        ).fetchall()
        connection.rollback()
    return "\n".join(str(row[0]) for row in rows)


def test_pending_deliveries_are_indexed_by_due_time_and_the_downgrade_drops_only_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        # Enough delivered ones that reading them all costs more than the index.
        for statement in _ROWS.replace("%(delivered)s", "5000").split(";"):
            params = {"at": _AT} if "%(at)s" in statement else None
            connection.execute(statement, params)
    assert _index(scratch_core) is None
    assert _INDEX not in repair_plan(scratch_core)

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.webhook_deliveries USING btree "
        "(next_attempt_at, id) WHERE (status = 'pending'::text)",
        True,
    )
    assert f"Index Scan using {_INDEX}" in repair_plan(scratch_core)

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute(
            "SELECT status, count(*) FROM webhook_deliveries GROUP BY status ORDER BY status"
        ).fetchall() == [("pending", 1), ("succeeded", 5000)]
