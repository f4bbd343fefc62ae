"""The admin commands that open a database themselves leave its schema as they find it: one not
at this version's head is refused in one line (exit 2), never upgraded behind the operator's
back. Only `remit migrate` (and `remit serve`, which runs it at start) migrates."""

from pathlib import Path

import psycopg
import pytest

from remit.cli import main
from remit.storage.embedded import EmbeddedCluster
from remit.storage.schema_check import shipped_revisions
from tests.support.command_databases import name_every_database
from tests.support.postgres import WorkerDatabases, scratch_database

# (the command line, its name in the refusal, the setting of the database it opens, its tree)
COMMANDS = [
    (["reconcile", "--date", "2026-11-02"], "reconcile", "DATABASE_URL", "core"),
    (["accounts", "create", "--json"], "accounts create", "DATABASE_URL", "core"),
    (
        ["settlement-report", "--date", "2026-11-02"],
        "settlement-report",
        "ACQUIRER_DATABASE_URL",
        "acquirer",
    ),
]


@pytest.fixture
def named_databases(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name_every_database(databases, monkeypatch, tmp_path)


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as db:
        rows = db.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        ).fetchall()
    return [row[0] for row in rows]


def _stamp(url: str, revision: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES (%s)", (revision,))


def _revision(url: str) -> str:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.usefixtures("named_databases")
@pytest.mark.parametrize(("argv", "name", "setting", "tree"), COMMANDS)
def test_a_database_never_migrated_is_refused_and_left_empty(
    pg_cluster: EmbeddedCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    name: str,
    setting: str,
    tree: str,
) -> None:
    with scratch_database(pg_cluster, "never_migrated") as url:
        monkeypatch.setenv(setting, url)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert _tables(url) == []
    assert err.count("\n") == 1, err
    assert err.startswith(f"remit {name}: the {tree} database ({setting} ")
    assert "has no remit schema yet: run `remit migrate` first" in err
    assert f"remit {name} never changes the schema" in err


@pytest.mark.usefixtures("named_databases")
@pytest.mark.parametrize(("argv", "name", "setting", "tree"), COMMANDS)
def test_a_database_behind_is_refused_and_left_behind(
    pg_cluster: EmbeddedCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    name: str,
    setting: str,
    tree: str,
) -> None:
    *_, previous, head = shipped_revisions(tree)
    with scratch_database(pg_cluster, "behind") as url:
        _stamp(url, previous)
        monkeypatch.setenv(setting, url)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert _revision(url) == previous
        assert _tables(url) == ["alembic_version"]
    assert err.count("\n") == 1, err
    assert f"is at schema revision {previous}, behind this remit version's {head}" in err
    assert "run `remit migrate` first" in err
