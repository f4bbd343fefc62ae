"""`remit card-fingerprints convert` runs one pass of the conversion now: 0 when nothing is left
to convert, and 75 when the vault it must ask is out of reach, changing nothing."""

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from remit.accounts.service import AccountsService
from remit.cli import main
from remit.payment_methods.fingerprint_conversion import ConversionCounts
from remit.payment_methods.fingerprints_command import render_counts
from remit.storage.engine import dispose, make_engine
from tests.support.command_databases import empty_core_database, name_every_database
from tests.support.postgres import WorkerDatabases

SHARED = "SharedFingerprnt"


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def core_env(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    name_every_database(databases, monkeypatch, tmp_path)
    monkeypatch.setenv("REMIT_INTERNAL_TOKEN", "t" * 32)
    # No vault listens there.
    monkeypatch.setenv("REMIT_VAULT_HOST", "127.0.0.1")
    monkeypatch.setenv("REMIT_VAULT_PORT", str(_unused_port()))
    yield databases.core_url
    empty_core_database(databases.core_url)


def _method_made_before_the_upgrade(core_url: str) -> None:
    async def run() -> None:
        engine = make_engine(core_url, pool_size=1)
        try:
            account = (await AccountsService(engine).create_account()).account.id
            async with engine.begin() as db:
                await db.execute(
                    text(
                        "INSERT INTO payment_methods (id, account_id, vault_token, brand, last4, "
                        "exp_month, exp_year, fingerprint, funding, billing_details, metadata, "
                        "created_at) VALUES ('pm_old', :account, 'vtok_old', 'visa', '4242', "
                        "12, 2030, :fingerprint, 'credit', '{}', '{}', :now)"
                    ),
                    {"account": account, "fingerprint": SHARED, "now": datetime.now(UTC)},
                )
        finally:
            await dispose(engine)

    asyncio.run(run())


def _held(core_url: str) -> tuple[str, int]:
    async def run() -> tuple[str, int]:
        engine = make_engine(core_url, pool_size=1)
        try:
            async with engine.connect() as db:
                row = (
                    await db.execute(
                        text(
                            "SELECT fingerprint, fingerprint_scope FROM payment_methods "
                            "WHERE id = 'pm_old'"
                        )
                    )
                ).one()
            return row.fingerprint, row.fingerprint_scope
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_nothing_left_to_convert_exits_zero_without_asking_the_vault(
    core_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["card-fingerprints", "convert"]) == 0
    assert capsys.readouterr().out == render_counts(ConversionCounts())


def test_a_vault_out_of_reach_exits_75_and_changes_nothing(
    core_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _method_made_before_the_upgrade(core_env)

    assert main(["card-fingerprints", "convert"]) == 75

    error = capsys.readouterr().err
    assert error.startswith("remit card-fingerprints convert: ")
    assert _held(core_env) == (SHARED, 1)


def test_rows_left_unconverted_are_reported_and_exit_one() -> None:
    rendered = render_counts(ConversionCounts(checked=3, converted=1, pending=1, unknown=1))

    assert "gave 1 their account's own fingerprint" in rendered
    assert "left 1 whose cards the vault has not re-sealed yet" in rendered
    # Exit 1 can last: what re-sealing cannot mend is said so.
    assert "re-sealed only once that version is back" in rendered
    assert "left 1 the vault could not answer for" in rendered
    assert "are left on every run" in rendered
