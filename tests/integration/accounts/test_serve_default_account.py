"""`remit serve` makes a test account, and prints its keys, only on an embedded core database
(`make run`'s) or when asked (REMIT_DEFAULT_ACCOUNT=1): on a database of DATABASE_URL, with a
data directory that does not last (a container's), every start would otherwise leave another
account with a working key, its secret key in full in the logs. A saved key that no longer
works is not printed.

`remit serve` runs in this process on the worker's migrated databases, with no processes: the
account is made, and the banner printed, before any starts."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from remit import serve as serve_module
from remit.accounts.domain import KeyKind
from remit.accounts.service import AccountsService
from remit.config import PlatformConfig, from_env
from remit.databases import ResolvedDatabases
from remit.storage.engine import dispose, make_engine
from remit.supervisor import Supervisor, read_default_account
from remit.worker.runner import libpq_url
from tests.support.command_databases import empty_core_database
from tests.support.postgres import WorkerDatabases


@pytest.fixture
def core_emptied(databases: WorkerDatabases) -> Iterator[None]:
    """The core database with no account before the test, and none left after it."""
    empty_core_database(databases.core_url)
    yield
    empty_core_database(databases.core_url)


@pytest.fixture
def without_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`remit serve` up to its banner: nothing listens, starts or is migrated."""
    monkeypatch.setattr(serve_module, "refuse_ports_in_use", lambda config: None)
    monkeypatch.setattr(serve_module, "install_stop_handlers", lambda supervisor: None)
    monkeypatch.setattr(serve_module, "migrate_all", lambda config: [])
    monkeypatch.setattr(Supervisor, "start", lambda self: None)
    monkeypatch.setattr(Supervisor, "wait", lambda self: 0)


def _accounts(databases: WorkerDatabases) -> int:
    with psycopg.connect(libpq_url(databases.core_url)) as db:
        row = db.execute("SELECT count(*) FROM accounts").fetchone()
    assert row is not None
    return int(row[0])


def _external(databases: WorkerDatabases, data_dir: Path, **extra: str) -> PlatformConfig:
    return from_env(
        {
            "REMIT_DATA_DIR": str(data_dir),
            "DATABASE_URL": databases.core_url,
            "VAULT_DATABASE_URL": databases.vault_url,
            "ACQUIRER_DATABASE_URL": databases.acquirer_url,
            **extra,
        }
    )


def _embedded(
    databases: WorkerDatabases, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> PlatformConfig:
    """No database URL set, as `make run` starts it: the embedded databases' URLs are the
    worker's databases (starting real embedded servers would take seconds)."""

    def resolve(config: PlatformConfig, **_: object) -> ResolvedDatabases:
        urls = (databases.core_url, databases.vault_url, databases.acquirer_url)
        return ResolvedDatabases(config.with_databases(*urls))

    monkeypatch.setattr(serve_module, "resolve_databases", resolve)
    return from_env({"REMIT_DATA_DIR": str(data_dir)})


def _serve(config: PlatformConfig, capsys: pytest.CaptureFixture[str]) -> str:
    assert serve_module.serve(config) == 0
    out = capsys.readouterr().out
    assert "remit is running" in out
    return out


@pytest.mark.usefixtures("core_emptied", "without_processes")
def test_on_external_databases_no_start_makes_an_account_or_prints_a_key(
    databases: WorkerDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for start in range(3):  # a container's data directory, new at every start
        data_dir = tmp_path / f"start-{start}"
        out = _serve(_external(databases, data_dir), capsys)
        assert "sk_test_" not in out
        assert "pk_test_" not in out
        assert "remit accounts create" in out
        assert read_default_account(data_dir) is None
    assert _accounts(databases) == 0


@pytest.mark.usefixtures("core_emptied", "without_processes")
def test_on_external_databases_the_operator_may_ask_for_the_test_account(
    databases: WorkerDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _serve(_external(databases, tmp_path, REMIT_DEFAULT_ACCOUNT="1"), capsys)
    saved = read_default_account(tmp_path)
    assert saved is not None
    assert f"secret key      {saved['secret_key']}" in out
    assert f"publishable key {saved['publishable_key']}" in out
    assert _accounts(databases) == 1


@pytest.mark.usefixtures("core_emptied", "without_processes")
def test_on_an_embedded_database_one_account_is_made_and_its_keys_printed_at_every_start(
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _embedded(databases, tmp_path, monkeypatch)
    first = _serve(config, capsys)
    again = _serve(config, capsys)
    saved = read_default_account(tmp_path)
    assert saved is not None
    for out in (first, again):
        assert f"account         {saved['id']}" in out
        assert f"secret key      {saved['secret_key']}" in out
        assert f"publishable key {saved['publishable_key']}" in out
    assert _accounts(databases) == 1


@pytest.mark.usefixtures("core_emptied", "without_processes")
def test_a_saved_secret_key_revoked_since_is_not_printed(
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _embedded(databases, tmp_path, monkeypatch)
    _serve(config, capsys)
    saved = read_default_account(tmp_path)
    assert saved is not None

    async def revoke_the_secret_key() -> None:
        engine = make_engine(databases.core_url, pool_size=1)
        try:
            service = AccountsService(engine)
            for key in await service.list_keys(saved["id"]):
                if key.kind is KeyKind.SECRET:
                    await service.revoke_key(saved["id"], key.id)
        finally:
            await dispose(engine)

    asyncio.run(revoke_the_secret_key())
    out = _serve(config, capsys)
    assert saved["secret_key"] not in out
    assert f"remit accounts keys create {saved['id']}`" in out
    assert f"publishable key {saved['publishable_key']}" in out  # still works
    assert _accounts(databases) == 1
