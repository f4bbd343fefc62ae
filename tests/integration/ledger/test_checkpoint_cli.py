"""`remit ledger checkpoint` appends checkpoints that `remit ledger verify --checkpoints FILE`
checks: it exits 1 naming the first checkpoint the database no longer agrees with, even when
the chains alone pass."""

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from remit.cli import main
from remit.core.secrets import Secret
from remit.ledger.checkpoints import Checkpoint, key_id, line_of
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
    assert f"keys not given: {old_id} (1 lines); give earlier keys as KEY@RETIRED_AT" in out

    # Retired when its last line was written: that line passes, under it.
    retired_at = json.loads(path.read_text().splitlines()[0])["at"]
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", f"{KEY}@{retired_at}")
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"checked 2 checkpoints of {path}: OK" in out
    assert f"checked under earlier key {old_id}: 1 checkpoints" in out


def test_verify_refuses_lines_a_leaked_retired_key_appends(
    platform_env: WorkerDatabases,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The key was changed because it leaked: whoever holds it appends lines for a rewritten
    chain, dated after its retirement or (to pass the cut-off) before it, and verify fails."""
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", KEY)
    monkeypatch.delenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", raising=False)
    path = tmp_path / "checkpoints.jsonl"
    seed(platform_env.core_url)
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    first = json.loads(path.read_text().splitlines()[0])
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", "the-checkpoint-key-after-the-change-0123")
    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", f"{KEY}@{first['at']}")
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 0
    capsys.readouterr()

    leaked = Secret(KEY.encode())
    retired_at = datetime.fromisoformat(first["at"])
    forged = Checkpoint(first["account_id"], first["sequence"], "cd" * 32, retired_at)
    with path.open("a") as file:
        file.write(line_of(replace(forged, at=retired_at + timedelta(seconds=1)), leaked))
        file.write(line_of(forged, leaked))  # at the cut-off, but after the new key's line
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        "CHECKPOINTS FAILED: 1 lines were signed by a retired key after its retirement; "
        "1 lines are out of order"
    ) in out
    assert "checkpoint_key_retired         line 3: signed by a retired key" in out
    assert "checkpoint_out_of_order        line 4: out of order" in out

    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS", KEY)
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 2
    assert "KEY@RETIRED_AT" in capsys.readouterr().err


def test_verify_fails_on_no_checkpoint_and_shows_a_cut_line_without_failing(
    platform_env: WorkerDatabases,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REMIT_LEDGER_CHECKPOINT_KEY", KEY)
    path = tmp_path / "checkpoints.jsonl"
    path.touch()
    seed(platform_env.core_url)
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 1
    assert "CHECKPOINTS FAILED: no checkpoint to check" in capsys.readouterr().out

    assert main(["ledger", "checkpoint", "--file", str(path)]) == 0
    with path.open("a") as file:
        file.write('{"account_id":"acct_')  # a crash mid-append
    capsys.readouterr()
    assert main(["ledger", "verify", "--checkpoints", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"checked 1 checkpoints of {path}: OK (1 lines incomplete)" in out
    assert "line 2: incomplete (an interrupted write)" in out
