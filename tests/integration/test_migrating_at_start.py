"""`remit migrate` and `remit serve` on databases they cannot simply migrate, and `remit serve`
with a default account file it cannot read: one line each, no traceback, and the exit codes of
`remit.command_exits` and `remit.serve`.

A database a newer remit migrated (at a revision this version does not know: an upgrade rolled
back) is left as it is, as this version's processes run on the newer schema
(`remit.storage.schema_check`); two settings naming one database are refused before anything
is migrated; a migration that fails otherwise is said in one line."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from remit.config import ConfigError
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from remit.storage.reachability import PlatformDatabase
from remit.storage.schema_check import (
    recorded_revision,
    refuse_unless_migrated,
    shipped_revisions,
)
from tests.support.commands import remit
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

NEWER = "9999_from_a_newer_version"


@dataclass(frozen=True)
class Scratch:
    core: str
    vault: str
    acquirer: str

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.core, "VAULT_DATABASE_URL": self.vault,
                "ACQUIRER_DATABASE_URL": self.acquirer}  # fmt: skip


@pytest.fixture
def scratch(pg_cluster: EmbeddedCluster) -> Iterator[Scratch]:
    """Three empty databases of this test's own."""
    with (
        scratch_database(pg_cluster, "start_core") as core,
        scratch_database(pg_cluster, "start_vault") as vault,
        scratch_database(pg_cluster, "start_acquirer") as acquirer,
    ):
        yield Scratch(core, vault, acquirer)


def _migrated_by_a_newer_version(url: str) -> None:
    upgrade("core", url)
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("UPDATE alembic_version SET version_num = %s", (NEWER,))


def _revision(tree: str, url: str) -> str | None:
    return recorded_revision(PlatformDatabase(tree, "DATABASE_URL", url, (tree,)))


async def test_migrate_leaves_a_database_a_newer_version_migrated_as_it_is(
    scratch: Scratch, tmp_path: Path
) -> None:
    _migrated_by_a_newer_version(scratch.core)
    ran = await remit("migrate", tmp_path=tmp_path, **scratch.env())

    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""  # no failure: said once, on stdout
    note, applied = ran.stdout.strip().splitlines()
    assert note.startswith("the core database (DATABASE_URL postgresql://")
    assert note.endswith(
        f"needed by core and worker) is at schema revision {NEWER}, newer than this remit "
        f"version's {shipped_revisions('core')[-1]}: left as it is (a newer version migrated "
        "it; this one runs on it)"
    )
    assert applied == "migrations applied"
    assert _revision("core", scratch.core) == NEWER
    # The others were migrated as ever.
    assert _revision("vault", scratch.vault) == shipped_revisions("vault")[-1]
    assert _revision("acquirer", scratch.acquirer) == shipped_revisions("acquirer")[-1]


async def test_serve_on_a_database_a_newer_version_migrated_gets_past_its_migrations(
    scratch: Scratch, tmp_path: Path
) -> None:
    """And a default account file left empty (a crash as it was written, before it was written
    whole) stops it next, naming the file: no other account is made in its place."""
    _migrated_by_a_newer_version(scratch.core)
    account_file = tmp_path / "default-account.json"
    account_file.write_text("")
    # (On databases of its own, serve reads the file only when asked for the test account.)
    ran = await remit("serve", "--api-port", "0", tmp_path=tmp_path, REMIT_ACQUIRER_PORT="0",
                      REMIT_DEFAULT_ACCOUNT="1", **scratch.env())  # fmt: skip

    assert ran.returncode == 2, ran.stderr
    lines = ran.failure_lines()
    assert lines[-1] == (
        f"remit serve: the default account file {account_file} cannot be read (it is not "
        "JSON): restore it, or remove it to have a new test account created"
    )
    [ahead] = [line for line in lines if " WARNING " in line]
    assert f"is at schema revision {NEWER}, newer than this remit version's " in ahead
    assert _revision("core", scratch.core) == NEWER
    assert _revision("vault", scratch.vault) == shipped_revisions("vault")[-1]
    assert account_file.read_text() == ""
    with psycopg.connect(scratch.core) as db:
        assert db.execute("SELECT count(*) FROM accounts").fetchone() == (0,)


@pytest.mark.parametrize("command", ["migrate", "serve"])
async def test_two_settings_naming_one_database_are_refused_before_migrating(
    command: str, scratch: Scratch, tmp_path: Path
) -> None:
    ran = await remit(
        command, tmp_path=tmp_path, DATABASE_URL=scratch.core, VAULT_DATABASE_URL=scratch.core,
        ACQUIRER_DATABASE_URL=scratch.acquirer,
    )  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert ran.failure_line() == (
        f"remit {command}: DATABASE_URL and VAULT_DATABASE_URL name the same database: the "
        "core, the vault and the acquirer each need a database of their own (their "
        "migrations would collide in one)"
    )
    assert _revision("core", scratch.core) is None


@pytest.mark.parametrize(("command", "code"), [("migrate", 3), ("serve", 2)])
async def test_a_migration_that_fails_is_said_in_one_line(
    command: str, code: int, scratch: Scratch, tmp_path: Path
) -> None:
    # A failure no other error names: the database takes no writes.
    with psycopg.connect(scratch.acquirer, autocommit=True) as db:
        name = db.execute("SELECT current_database()").fetchone()
        assert name is not None
        db.execute(f'ALTER DATABASE "{name[0]}" SET default_transaction_read_only = on')
    ran = await remit(command, tmp_path=tmp_path, REMIT_ACQUIRER_PORT="0", **scratch.env())

    assert ran.returncode == code, ran.stderr
    [failure] = [line for line in ran.failure_lines() if "failed" in line]
    assert "the migrations of the acquirer database (ACQUIRER_DATABASE_URL postgresql://" in failure
    assert failure.endswith(
        "needed by acquirer) failed: InternalError: (psycopg.errors.ReadOnlySqlTransaction) "
        "cannot execute CREATE TABLE in a read-only transaction"
    )
    assert _revision("acquirer", scratch.acquirer) is None


async def test_a_failed_migration_leaves_those_before_it_applied_and_the_next_run_goes_on(
    scratch: Scratch, tmp_path: Path
) -> None:
    """Exit 3 (README, "exits with a code a script can act on"): each migration commits on its
    own, so the databases migrated first, and the failed database's earlier migrations, stay
    migrated; once what stopped it is gone, the next run starts from the one that failed."""
    # The acquirer's 0004 creates this table: finding it there, it fails.
    in_the_way = "CREATE TABLE settlement_grace (id boolean PRIMARY KEY)"
    with psycopg.connect(scratch.acquirer, autocommit=True) as db:
        db.execute(in_the_way)
    ran = await remit("migrate", tmp_path=tmp_path, **scratch.env())

    assert ran.returncode == 3, ran.stderr
    assert ran.failure_line().startswith("remit migrate: the migrations of the acquirer database")
    assert 'relation "settlement_grace" already exists' in ran.failure_line()
    assert _revision("core", scratch.core) == shipped_revisions("core")[-1]
    assert _revision("vault", scratch.vault) == shipped_revisions("vault")[-1]
    assert _revision("acquirer", scratch.acquirer) == "0003_settlement_snapshots"

    with psycopg.connect(scratch.acquirer, autocommit=True) as db:
        db.execute("DROP TABLE settlement_grace")
    again = await remit("migrate", tmp_path=tmp_path, **scratch.env())
    assert again.returncode == 0, again.stderr
    assert _revision("acquirer", scratch.acquirer) == shipped_revisions("acquirer")[-1]


@pytest.mark.parametrize("command", ["migrate", "serve"])
async def test_two_settings_swapped_are_refused_naming_the_setting(
    command: str, scratch: Scratch, tmp_path: Path
) -> None:
    """A revision of another remit database's migrations is not a newer version's: the core
    and the vault on each other's databases would each take the other's data for its own."""
    upgrade("core", scratch.core)
    upgrade("vault", scratch.vault)
    upgrade("acquirer", scratch.acquirer)
    ran = await remit(
        command, tmp_path=tmp_path, DATABASE_URL=scratch.vault, VAULT_DATABASE_URL=scratch.core,
        ACQUIRER_DATABASE_URL=scratch.acquirer, REMIT_ACQUIRER_PORT="0",
    )  # fmt: skip

    assert ran.returncode == 2, ran.stderr
    failure = ran.failure_lines()[-1]
    assert failure.startswith(f"remit {command}: the core database (DATABASE_URL postgresql://")
    assert failure.endswith(
        f"is at schema revision {shipped_revisions('vault')[-1]}, one of the vault database's: "
        "DATABASE_URL seems to name the vault database (are DATABASE_URL and "
        "VAULT_DATABASE_URL swapped?); correct DATABASE_URL"
    )
    assert _revision("core", scratch.core) == shipped_revisions("core")[-1]
    assert _revision("vault", scratch.vault) == shipped_revisions("vault")[-1]


def test_a_process_on_another_remit_database_refuses_to_start(scratch: Scratch) -> None:
    """Each process checks its own database as it starts (`remit.bootstrap`): the vault's
    revision on the core's setting is refused, not taken for a newer version's."""
    upgrade("vault", scratch.vault)
    core = PlatformDatabase("core", "DATABASE_URL", scratch.vault, ("core",))

    with pytest.raises(ConfigError) as refused:
        refuse_unless_migrated(core)
    assert str(refused.value).endswith(
        "DATABASE_URL seems to name the vault database (are DATABASE_URL and "
        "VAULT_DATABASE_URL swapped?); correct DATABASE_URL"
    )
