"""Core migration 0074 gives jobs a count of their claims put back, 0 for the jobs already
there; its downgrade drops it and leaves the jobs."""

from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import alembic_config, upgrade
from tests.support.postgres import scratch_database

_BEFORE = "0073_webhook_give_up_failures"
_AFTER = "0074_job_put_backs"


@pytest.fixture
def scratch_core(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "job_put_backs") as url:
        yield url


def test_jobs_count_put_backs_from_0_and_the_downgrade_drops_the_count(
    scratch_core: str,
) -> None:
    upgrade("core", scratch_core, _BEFORE)
    with psycopg.connect(scratch_core, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO jobs (kind, payload, run_at, attempts, max_attempts, created_at)"
            " VALUES ('early', '{}', now(), 3, 26, now())"
        )

    upgrade("core", scratch_core, _AFTER)
    with psycopg.connect(scratch_core) as connection:
        assert connection.execute(
            "SELECT attempts, max_attempts, put_backs FROM jobs"
        ).fetchall() == [(3, 26, 0)]

    command.downgrade(alembic_config("core", scratch_core), _BEFORE)
    with psycopg.connect(scratch_core) as connection:
        assert (
            connection.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'jobs' AND column_name = 'put_backs'"
            ).fetchall()
            == []
        )
        assert connection.execute("SELECT attempts FROM jobs").fetchall() == [(3,)]
