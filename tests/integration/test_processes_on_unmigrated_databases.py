"""A process started on a database its migrations have not reached (none applied, or not all)
refuses to start in one line, exit 2, rather than report itself ready and fail requests on a
missing table; a database ahead of it (a newer version migrated it while this one still runs,
during an upgrade) is no refusal."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from remit.config import ConfigError
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from remit.storage.reachability import PlatformDatabase
from remit.storage.schema_check import refuse_unless_migrated, shipped_revisions
from tests.support.commands import remit
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_SETTING = {"core": "DATABASE_URL", "vault": "VAULT_DATABASE_URL",
            "acquirer": "ACQUIRER_DATABASE_URL"}  # fmt: skip


@pytest.fixture
def empty_database(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    with scratch_database(pg_cluster, "unmigrated") as url:
        yield url


@pytest.mark.parametrize(
    ("role", "tree"),
    [("core", "core"), ("worker", "core"), ("vault", "vault"), ("acquirer", "acquirer")],
)
async def test_a_process_on_a_database_never_migrated_refuses_to_start_in_one_line(
    role: str, tree: str, empty_database: str, tmp_path: Path
) -> None:
    ran = await remit(role, tmp_path=tmp_path, REMIT_CORE_PORT="0", REMIT_VAULT_PORT="0",
                      REMIT_ACQUIRER_PORT="0", **{_SETTING[tree]: empty_database})  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    line = ran.failure_line()
    assert f"remit {role}: the {tree} database ({_SETTING[tree]} " in line
    assert line.endswith(
        "is not migrated: run `remit migrate` with the same settings, then start it again"
    )


def _database(url: str) -> PlatformDatabase:
    return PlatformDatabase("core", "DATABASE_URL", url, ("core", "worker"))


def test_a_database_behind_this_versions_migrations_is_refused_naming_both(
    empty_database: str,
) -> None:
    earlier = shipped_revisions("core")[-2]
    upgrade("core", empty_database, earlier)
    with pytest.raises(ConfigError) as refused:
        refuse_unless_migrated(_database(empty_database))
    assert f"is at schema revision {earlier}, behind this version's " in str(refused.value)
    assert shipped_revisions("core")[-1] in str(refused.value)

    upgrade("core", empty_database)
    refuse_unless_migrated(_database(empty_database))  # at head: no refusal


async def test_a_worker_on_a_core_database_before_job_put_backs_refuses_to_start(
    empty_database: str, tmp_path: Path
) -> None:
    """Its job claims return `put_backs` (core migration 0074): started before the migration,
    it refuses in one line rather than fail every claim (README's note on 0074)."""
    upgrade("core", empty_database, "0073_webhook_give_up_failures")
    ran = await remit("worker", tmp_path=tmp_path, DATABASE_URL=empty_database)
    assert ran.returncode == 2, ran.stderr
    line = ran.failure_line()
    assert "remit worker: the core database (DATABASE_URL " in line
    assert "is at schema revision 0073_webhook_give_up_failures, behind this version's " in line


def test_a_database_ahead_of_this_version_is_no_refusal(empty_database: str) -> None:
    upgrade("core", empty_database)
    with psycopg.connect(empty_database, autocommit=True) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_version'")
    refuse_unless_migrated(_database(empty_database))
