"""Core migration 0077 indexes runnable jobs by kind, due time and id, which each of a worker's
lanes claims its own kinds' jobs by; its downgrade drops the index and leaves the jobs."""

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0076_webhook_attempt_numbers"
_AFTER = "0077_jobs_runnable_by_kind"
_INDEX = "ix_jobs_runnable_kind"
_DUE = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "jobs_runnable_kind") as url:
        yield url


def _index(url: str) -> str | None:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s) AND i.indisvalid",
            (_INDEX,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_runnable_jobs_are_indexed_by_kind_and_the_downgrade_drops_only_the_index(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, payload, run_at, max_attempts, created_at)"
            " VALUES ('webhooks.deliver', '{}', %(at)s, 25, %(at)s)",
            {"at": _DUE},
        )
    assert _index(scratch_core) is None

    upgrade("core", scratch_core, _AFTER)
    assert _index(scratch_core) == (
        f"CREATE INDEX {_INDEX} ON public.jobs USING btree (kind, run_at, id) "
        "WHERE (status = 'pending'::text)"
    )

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    assert _index(scratch_core) is None
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute("SELECT kind FROM jobs").fetchall() == [("webhooks.deliver",)]
