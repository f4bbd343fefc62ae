"""`remit ledger checkpoint` appends checkpoints that `remit ledger verify --checkpoints FILE`
checks: it exits 1 naming the first checkpoint the database no longer agrees with, even when
the chains alone pass."""

import asyncio
from pathlib import Path

import pytest

from remit.cli import main
from remit.core.secrets import Secret
from remit.ledger.checkpoints import key_id
from remit.storage.engine import dispose, make_engine
from tests.integration.ledger.test_checkpoints import rewrite_history
from tests.integration.ledger.test_cli import platform_env, seed
from tests.support.postgres import WorkerDatabases

__all__ = ["platform_env"]  # the fixture, used by name

KEY = "checkpoint-key-for-the-cli-0123456789"


def rewrite(core_url: str, account_id: str) -> None:
    async def run() -> None:
        engine = make_engine(core_url, pool_size=1)
        try:
            async with engine.connect() as db:
                txid = (
                    await db.exec_driver_sql(
                        "SELECT id FROM ledger_transactions WHERE account_id = %(a)s "
                        "ORDER BY sequence LIMIT 1",
                        {"a": account_id},
                    )
                ).scalar_one()
            await rewrite_history(engine, account_id, str(txid))
        finally:
            await dispose(engine)

    asyncio.run(run())


def test_verify_against_checkpoints_names_the_first_one_the_database_disagrees_with(
    platform_env: WorkerDatabases,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", KEY)
    path = tmp_path / "checkpoints.jsonl"
    account = seed(platform_env.core_url)
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    assert f"appended 1 checkpoints to {path}" in capsys.readouterr().out
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 0
    assert f"checkpoints of {path}: OK" in capsys.readouterr().out

    rewrite(platform_env.core_url, account)
    assert main(["ledger", "verify"]) == 0
    capsys.readouterr()
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 1
    out = capsys.readouterr().out
    assert "CHECKPOINTS FAILED: the database no longer agrees with 1" in out
    assert f"first checkpoint the database no longer agrees with: line 1, {account}" in out


def test_checkpoints_need_their_key(
    platform_env: WorkerDatabases,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("REMIT_LEDGER_CHECKPOINT_KEY", raising=False)
    monkeypatch.delenv("REMIT_LEDGER_CHECKPOINT_KEY_FILE", raising=False)
    path = tmp_path / "checkpoints.jsonl"
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 2
    assert "REMIT_LEDGER_CHECKPOINT_KEY" in capsys.readouterr().err
    assert not path.exists()


def test_verify_after_a_key_change_names_the_keys_it_was_not_given(
    platform_env: WorkerDatabases,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    new_key = "the-checkpoint-key-after-the-change-0123"
    old_id = key_id(Secret(KEY.encode()))
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", KEY)
    monkeypatch.delenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", raising=False)
    path = tmp_path / "checkpoints.jsonl"
    seed(platform_env.core_url)
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    assert f"under key {old_id}" in capsys.readouterr().out
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", new_key)
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    capsys.readouterr()

    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 1
    out = capsys.readouterr().out
    assert "CHECKPOINTS FAILED: 1 lines were written under keys not given" in out
    assert f"keys not given: {old_id} (1 lines)" in out

    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", KEY)
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 0
    assert f"checked 2 checkpoints of {path}: OK" in capsys.readouterr().out
