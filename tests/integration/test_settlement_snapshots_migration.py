"""Acquirer migration 0003: operations written before it record no transaction and are in every
report since; those written after record theirs; the downgrade takes the column away."""

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from alembic import command

from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.acquirer.support import MERCHANT, NOW, authorization_request
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio


@pytest.fixture
def scratch_acquirer(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "settlement_snapshots") as url:
        yield url


async def sale(url: str, reference: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        service = AcquirerService(engine, FixedClock(NOW))
        await service.authorize(authorization_request(reference=reference, capture=True))
    finally:
        await dispose(engine)


def with_released_remainders(url: str) -> None:
    """Today's service writes and reads the column acquirer migration 0005 adds; this older
    schema gets it as 0005 gives it to the rows stored before it (nothing released), so the
    service can run on it."""
    with psycopg.connect(url) as connection:
        connection.execute(
            "ALTER TABLE operations ADD COLUMN released_minor bigint NOT NULL DEFAULT 0"
        )


def recorded(url: str) -> list[tuple[str, bool]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT reference, recorded_xid IS NOT NULL FROM operations ORDER BY reference"
        ).fetchall()
    return [(str(reference), bool(written_by)) for reference, written_by in rows]


async def test_operations_written_before_are_in_every_report_and_later_ones_record_theirs(
    scratch_acquirer: str,
) -> None:
    upgrade("acquirer", scratch_acquirer, "0002_off_session_setups")
    with_released_remainders(scratch_acquirer)
    await sale(scratch_acquirer, "before")
    upgrade("acquirer", scratch_acquirer, "0003_settlement_snapshots")
    await sale(scratch_acquirer, "after")
    assert recorded(scratch_acquirer) == [("after", True), ("before", False)]
    engine = make_engine(scratch_acquirer, pool_size=1)
    try:
        service = AcquirerService(engine, FixedClock(NOW + timedelta(days=1)))
        first = await service.settlement_page(NOW.date(), MERCHANT, limit=1)
        assert first.next is not None
        rest = await service.settlement_page(NOW.date(), MERCHANT, after=first.next, limit=1)
    finally:
        await dispose(engine)
    assert sorted(row.reference for row in [*first.rows, *rest.rows]) == ["after", "before"]
    command.downgrade(alembic_config("acquirer", scratch_acquirer), "0002_off_session_setups")
    with psycopg.connect(scratch_acquirer) as connection:
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'operations'"
        ).fetchall()
    assert ("recorded_xid",) not in columns
