"""Core migration 0072 gives webhook deliveries a count of the failed give-ups of their jobs,
0 for the deliveries already there, and the latest one's reason; its downgrade drops both and
leaves the deliveries."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0072_ledger_reversals_negate"
_AFTER = "0073_webhook_give_up_failures"


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "give_up_failures") as url:
        yield url


def _columns(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'webhook_deliveries' AND column_name LIKE 'give_up%%'"
            " ORDER BY column_name"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_deliveries_count_failed_give_ups_from_0_and_the_downgrade_drops_only_the_count(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO accounts (id, created_at, default_currency, raw_card_access,"
            " fee_percent_bps, fee_fixed_minor, available_delay_days, automatic_payouts,"
            " radar_enabled) VALUES ('acct_1', now(), 'usd', false, 290, 30, 2, false, true);"
            "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata,"
            " status, secret, created_at) VALUES ('we_1', 'acct_1', 'https://example.com',"
            " '[\"*\"]', '{}', 'enabled', 'whsec_1', now());"
            "INSERT INTO events (id, account_id, type, created_at, livemode, data_object)"
            " VALUES ('evt_1', 'acct_1', 'customer.created', now(), false, '{}');"
            "INSERT INTO webhook_deliveries (account_id, event_id, endpoint_id, status,"
            " first_attempt_at) VALUES ('acct_1', 'evt_1', 'we_1', 'pending', now())"
        )

    upgrade("core", scratch_core, _AFTER)
    assert _columns(scratch_core) == ["give_up_error", "give_up_failures"]
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute(
            "SELECT give_up_failures, give_up_error FROM webhook_deliveries"
        ).fetchall() == [(0, None)]

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _columns(scratch_core) == []
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT status FROM webhook_deliveries").fetchall() == [
            ("pending",)
        ]
