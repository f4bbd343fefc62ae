"""Core migration 0019 gives webhook deliveries their retry step: pending deliveries carry on
where their schedule was, and downgrading drops the column again."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.webhooks.conftest import make_bench
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0018_ledger_turn"


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "retry_step") as url:
        upgrade("core", url)
        yield url


async def _two_deliveries(url: str) -> None:
    engine = make_engine(url, pool_size=2)
    try:
        async with make_bench(engine) as bench:
            await bench.endpoint("http://127.0.0.1:9/hook")
            await bench.record()
            await bench.record()
    finally:
        await dispose(engine)


def _retry_steps(url: str) -> dict[str, int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT status, retry_step FROM webhook_deliveries").fetchall()
    return {str(status): int(step) for status, step in rows}


def _has_retry_step(url: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_name = 'webhook_deliveries' AND column_name = 'retry_step'"
        ).fetchone()
    return row is not None


async def test_pending_deliveries_keep_their_place_in_the_schedule_across_the_migration(
    scratch_core: str,
) -> None:
    """Before 0019 every attempt was a step of the schedule, so a pending delivery's step is its
    attempt count; a finished one is never scheduled again unless redelivered, which starts it
    over at 0."""
    await _two_deliveries(scratch_core)
    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert not _has_retry_step(scratch_core)
    with psycopg.connect(scratch_core) as connection:
        connection.execute(
            "UPDATE webhook_deliveries SET attempts = 3 "
            "WHERE id = (SELECT min(id) FROM webhook_deliveries)"
        )
        connection.execute(
            "UPDATE webhook_deliveries SET attempts = 10, status = 'failed', "
            "next_attempt_at = NULL WHERE id = (SELECT max(id) FROM webhook_deliveries)"
        )

    upgrade("core", scratch_core)

    assert _retry_steps(scratch_core) == {"pending": 3, "failed": 0}
