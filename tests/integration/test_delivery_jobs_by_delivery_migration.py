"""Core migration 0078 indexes pending delivery jobs by their delivery, with statistics of
that expression over the table; its downgrade drops both and leaves the jobs."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0077_jobs_runnable_by_kind"
_AFTER = "0078_delivery_jobs_by_delivery"
_INDEX = "ix_jobs_pending_delivery"
_DUE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "delivery_jobs_by_delivery") as url:
        yield url


def _index(url: str) -> str | None:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s) AND i.indisvalid",
            (_INDEX,),
        ).fetchone()
    return None if row is None else str(row[0])


def _statistics(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT stxname FROM pg_statistic_ext WHERE stxrelid = to_regclass('jobs')"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_delivery_jobs_are_indexed_by_delivery_and_the_downgrade_drops_only_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, payload, run_at, max_attempts, created_at)"
            """ VALUES ('webhooks.deliver', '{"delivery_id": 7}', %(at)s, 25, %(at)s)""",
            {"at": _DUE},
        )
    assert _index(scratch_core) is None

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.jobs USING btree (((payload ->> 'delivery_id'::text))) "
        "WHERE ((status = 'pending'::text) AND (kind = 'webhooks.deliver'::text))"
    )
    assert _statistics(scratch_core) == ["st_jobs_delivery_id"]

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
    assert _statistics(scratch_core) == []
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT kind FROM jobs").fetchall() == [("webhooks.deliver",)]
