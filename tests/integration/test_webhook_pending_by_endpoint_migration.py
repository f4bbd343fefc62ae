"""Core migration 0075 indexes the pending webhook deliveries by endpoint and id, the order a
deleted endpoint's job ends them in; its downgrade drops the index."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0074_job_put_backs"
_AFTER = "0075_webhook_pending_by_endpoint"
_INDEX = "ix_webhook_deliveries_pending_endpoint"


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "webhook_pending_by_endpoint") as url:
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


def test_pending_deliveries_are_indexed_by_endpoint_and_id_and_the_downgrade_drops_it(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    assert _index(scratch_core) is None

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.webhook_deliveries USING btree "
        "(endpoint_id, id) WHERE (status = 'pending'::text)",
        True,
    )

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
