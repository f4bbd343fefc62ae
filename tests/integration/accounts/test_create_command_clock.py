"""`remit accounts create` stamps its idempotency key by the database's clock, which a run
again on another host and the worker's reaper compare it with, not by its host's."""

import io
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts import create_command
from remit.accounts.create_command import create_account_command
from remit.accounts.tables import accounts, admin_idempotency_keys
from remit.cli import main
from remit.config import from_env
from remit.core.clock import SystemClock
from remit.core.logging import configuration_kept
from remit.storage.database_clock import DatabaseClock, command_clock
from remit.storage.embedded import to_sqlalchemy_url
from remit.storage.engine import dispose, make_engine
from tests.support.commands import unreachable_url
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


async def _database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as db:
        value = (await db.execute(select(func.clock_timestamp()))).scalar_one()
    assert isinstance(value, datetime)
    return value


async def test_accounts_create_on_a_host_whose_clock_runs_behind_stamps_by_the_database(
    core_engine: AsyncEngine,
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host_now = SystemClock.now
    # Three days behind: by its host's clock the key would be due for deletion at once.
    monkeypatch.setattr(SystemClock, "now", lambda self: host_now(self) - timedelta(days=3))
    config = from_env(
        {
            "DATABASE_URL": databases.core_url,
            "VAULT_DATABASE_URL": databases.vault_url,
            "ACQUIRER_DATABASE_URL": databases.acquirer_url,
            "REMIT_DATA_DIR": str(tmp_path),
        }
    )
    out = io.StringIO()
    before = await _database_now(core_engine)
    # In a thread: the command runs its own event loop, as it does from the shell.
    done = await anyio.to_thread.run_sync(
        lambda: create_account_command(
            config,
            raw_card_access=False,
            currency="usd",
            idempotency_key="behind-1",
            as_json=True,
            out=out,
        )
    )
    after = await _database_now(core_engine)
    assert done == 0, out.getvalue()
    async with core_engine.connect() as db:
        claimed = (await db.execute(select(admin_idempotency_keys.c.created_at))).scalar_one()
        created = (await db.execute(select(accounts.c.created_at))).scalar_one()
    assert before <= claimed <= after
    assert before <= created <= after


async def test_accounts_create_whose_database_is_gone_at_the_clock_says_nothing_was_made(
    core_engine: AsyncEngine,
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The database was there for the schema check, and gone by the first statement of the
    command's own, the read of its clock: nothing was sent that could make an account, so
    there is nothing to run again under the key for."""

    async def clock_out_of_reach(_engine: AsyncEngine) -> DatabaseClock:
        gone = make_engine(to_sqlalchemy_url(unreachable_url("remit_core")))
        try:
            return await command_clock(gone)
        finally:
            await dispose(gone)

    monkeypatch.setattr(create_command, "command_clock", clock_out_of_reach)
    for name, url in (("DATABASE_URL", databases.core_url),
                      ("VAULT_DATABASE_URL", databases.vault_url),
                      ("ACQUIRER_DATABASE_URL", databases.acquirer_url)):  # fmt: skip
        monkeypatch.setenv(name, url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    async with core_engine.connect() as db:
        accounts_before = (await db.execute(select(func.count()).select_from(accounts))).scalar()

    with configuration_kept():
        code = await anyio.to_thread.run_sync(
            lambda: main(["accounts", "create", "--idempotency-key", "gone-1"])
        )

    assert code == 75
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("remit accounts create: the core database ")
    assert "may have been made" not in line
    assert "--idempotency-key" not in line
    async with core_engine.connect() as db:
        accounts_after = (await db.execute(select(func.count()).select_from(accounts))).scalar()
        keys = admin_idempotency_keys.c
        claimed = (
            await db.execute(select(func.count()).where(keys.idempotency_key == "gone-1"))
        ).scalar()
    assert (accounts_after, claimed) == (accounts_before, 0)
