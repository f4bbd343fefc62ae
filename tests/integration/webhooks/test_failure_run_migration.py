"""Core migration 0021: endpoints failing at the upgrade take their latest failed attempt from
the attempts recorded, so a run already broken by a long silence is seen as broken."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0020_payment_method_choice"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
LATEST_FAILURE = datetime(2026, 11, 3, 6, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "failure_runs") as url:
        upgrade("core", url)
        yield url


def _endpoint(connection: "psycopg.Connection[tuple[object, ...]]", endpoint_id: str) -> None:
    connection.execute(
        "INSERT INTO webhook_endpoints (id, account_id, url, enabled_events, metadata, status, "
        "secret, failing_since, created_at) VALUES (%s, 'acct_1', 'https://x.example/h', "
        "'[\"*\"]', '{}', 'enabled', 'whsec_x', %s, %s)",
        (endpoint_id, T0, T0),
    )


def _attempt(
    connection: "psycopg.Connection[tuple[object, ...]]",
    endpoint_id: str,
    at: datetime,
    *,
    succeeded: bool,
) -> None:
    connection.execute(
        "INSERT INTO webhook_delivery_attempts (id, delivery_id, account_id, event_id, "
        "endpoint_id, attempted_at, http_status, latency_ms, response_snippet, attempt_number, "
        "succeeded) VALUES (%s, 1, 'acct_1', 'evt_1', %s, %s, 500, 5, '', 1, %s)",
        (f"del_{endpoint_id}_{at.timestamp():.0f}", endpoint_id, at, succeeded),
    )


def test_failing_endpoints_take_their_latest_failed_attempt(scratch_core: str) -> None:
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        connection.execute("SET session_replication_role = replica")  # rows without parents
        _endpoint(connection, "we_attempts")
        _attempt(connection, "we_attempts", T0, succeeded=False)
        _attempt(connection, "we_attempts", LATEST_FAILURE, succeeded=False)
        _endpoint(connection, "we_purged")  # its attempts are gone with their events
    upgrade("core", scratch_core)
    with psycopg.connect(scratch_core) as connection:
        rows: dict[object, object] = dict(
            connection.execute("SELECT id, last_failed_at FROM webhook_endpoints").fetchall()
        )
    assert rows == {"we_attempts": LATEST_FAILURE, "we_purged": T0}
