"""The vault process tells the time by the database's clock, not its host's
(`remit.vault.vault_clock`): its audit events' times, which decide whether a forward may still
be in flight (`remit.vault.forwards_in_flight`), agree across vault processes whatever their
hosts' clocks say. It reads the clock again every minute, and stops when the process stops."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import remit.grpcutil.server
import remit.vault.grpc
import remit.vault.service
from remit.config import from_env
from remit.core.secrets import Secret
from remit.vault.process import run_vault
from remit.vault.service import VaultService
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


class HostClockLongAgo:
    """A host whose clock is years off (stepped back by hand, or never synchronized)."""

    def now(self) -> datetime:
        return LONG_AGO


def _keep_reading_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "keep_reading" in task.get_coro().__qualname__  # type: ignore[union-attr]
    ]


async def test_the_vault_stamps_by_the_database_s_clock_and_stops_reading_it_on_stop(
    databases: WorkerDatabases,
    vault_engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remit.vault.service, "SystemClock", HostClockLongAgo)
    served: list[VaultService] = []
    monkeypatch.setattr(
        remit.vault.grpc, "vault_registration", lambda service: served.append(service)
    )
    stamped: list[datetime] = []
    still_reading: list[int] = []

    async def serve(*args: Any, on_stop: Any, stop_event: asyncio.Event, **kwargs: Any) -> None:
        [service] = served
        await service.tokenize(
            "acct_1", Secret("4242424242424242"), 12, 2031, None, requester="test"
        )
        async with vault_engine.connect() as db:
            stamped.append(
                (await db.execute(text("SELECT max(created_at) FROM audit_events"))).scalar_one()
            )
        still_reading.append(len(_keep_reading_tasks()))
        stop_event.set()
        await on_stop()

    monkeypatch.setattr(remit.grpcutil.server, "serve_grpc", serve)
    config = from_env(
        {
            "VAULT_DATABASE_URL": databases.vault_url,
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_VAULT_PORT": "0",
            "REMIT_INTERNAL_AUTH": "off",
        }
    )
    await run_vault(config)

    async with vault_engine.connect() as db:
        database_now = (await db.execute(select(func.now()))).scalar_one()
    [audited] = stamped
    assert abs(audited - database_now) < timedelta(minutes=1)
    assert still_reading == [1]
    assert _keep_reading_tasks() == []
