"""Core migration 0066 indexes the ended jobs by status and end time, which the worker's prune
deletes them by and `remit jobs failed` lists them by, without reading the whole table; its
downgrade drops the index and leaves the jobs."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0065_balance_release_failures"
_AFTER = "0066_jobs_finished"
_INDEX = "ix_jobs_finished"
_ENDED = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "jobs_finished") as url:
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


def _plans(url: str) -> str:
    """The plans of the prune's batch and of the list of failed jobs."""
    with psycopg.connect(url) as connection:
        # Few rows: without this the planner reads them all whatever indexes there are.
        connection.execute("SET enable_seqscan = off")
        plans = []
        for statement in (
            "EXPLAIN DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = 'done' "
            "AND finished_at < %(at)s LIMIT 10000)",
            "EXPLAIN SELECT id FROM jobs WHERE status = 'failed' "
            "ORDER BY finished_at DESC, id DESC LIMIT 50",
        ):
            rows = connection.execute(statement, {"at": _ENDED + timedelta(days=1)}).fetchall()
            plans.append("\n".join(str(row[0]) for row in rows))
        connection.rollback()
    return "\n---\n".join(plans)


def test_ended_jobs_are_indexed_by_their_end_and_the_downgrade_drops_only_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, payload, status, run_at, max_attempts, created_at, "
            "finished_at) VALUES ('noop', '{}', 'done', %(at)s, 25, %(at)s, %(at)s), "
            "('noop', '{}', 'failed', %(at)s, 25, %(at)s, %(at)s)",
            {"at": _ENDED},
        )
    assert _index(scratch_core) is None
    assert _INDEX not in _plans(scratch_core)

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.jobs USING btree (status, finished_at) "
        "WHERE (status = ANY (ARRAY['done'::text, 'failed'::text]))",
        True,
    )
    assert _plans(scratch_core).count(_INDEX) == 2

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT status FROM jobs ORDER BY id").fetchall() == [
            ("done",),
            ("failed",),
        ]
