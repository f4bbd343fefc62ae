"""`remit jobs failed` lists the jobs that failed for good, the latest first, without their
payloads, and exits 1 when it lists any, as `remit held-requests list` does."""

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from remit.cli import main
from remit.storage.engine import dispose, make_engine
from tests.support.command_databases import empty_core_database, name_every_database
from tests.support.postgres import WorkerDatabases

FAILED_AT = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)


@pytest.fixture
def core_env(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    name_every_database(databases, monkeypatch, tmp_path)
    yield databases.core_url
    empty_core_database(databases.core_url)


def _stage(core_url: str, *rows: tuple[str, str, str | None, datetime]) -> list[int]:
    """Jobs of (kind, status, last error, end); returns their ids."""

    async def run() -> list[int]:
        engine = make_engine(core_url, pool_size=1)
        try:
            ids = []
            async with engine.begin() as db:
                for kind, status, error, ended in rows:
                    ids.append(
                        await db.scalar(
                            text(
                                "INSERT INTO jobs (kind, payload, account_id, status, run_at, "
                                "attempts, max_attempts, last_error, created_at, finished_at) "
                                "VALUES (:kind, CAST(:payload AS jsonb), 'acct_1', :status, "
                                ":at, 25, 25, :error, :at, :at) RETURNING id"
                            ),
                            {
                                "kind": kind,
                                "payload": json.dumps({"secret_note": "payload-must-not-show"}),
                                "status": status,
                                "error": error,
                                "at": ended,
                            },
                        )
                    )
            return ids
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_no_failed_job_exits_zero(core_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    _stage(core_env, ("webhooks.deliver", "done", None, FAILED_AT))
    assert main(["jobs", "failed"]) == 0
    assert capsys.readouterr().out == "no failed jobs\n"


def test_failed_jobs_are_listed_latest_first_without_payloads_and_exit_one(
    core_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    older, newer = _stage(
        core_env,
        (
            "payments.expire_authorization",
            "failed",
            "RuntimeError: the card 4242424242424242 was refused\n[SQL: UPDATE ...]\n"
            "[parameters: {'secret': 'x'}]",
            FAILED_AT,
        ),
        ("webhooks.deliver", "failed", None, FAILED_AT + timedelta(hours=1)),
    )
    assert main(["jobs", "failed"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "2 failed jobs, the latest to fail first"
    assert lines[2].split() == [
        "2026-11-03T02:00:00Z", str(newer), "webhooks.deliver", "25/25", "acct_1"
    ]  # fmt: skip
    assert lines[3] == "    last error: (none recorded)"
    assert lines[4].split() == [
        "2026-11-03T01:00:00Z", str(older), "payments.expire_authorization", "25/25", "acct_1"
    ]  # fmt: skip
    assert lines[5].startswith("    last error: RuntimeError: the card ")
    assert "4242424242424242" not in out
    assert "payload-must-not-show" not in out
    assert "parameters" not in out

    assert main(["jobs", "failed", "--limit", "1"]) == 1
    limited = capsys.readouterr().out.splitlines()
    assert limited[0] == "1 failed job, the latest to fail first (more not shown: raise --limit)"
    assert limited[2].split()[1] == str(newer)


def test_a_limit_out_of_bounds_is_refused(
    core_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["jobs", "failed", "--limit", "0"]) == 2
    assert capsys.readouterr().err == (
        "remit jobs failed: --limit must be between 1 and 1000, got 0\n"
    )


def test_it_starts_no_embedded_server_for_the_databases_it_does_not_read(
    core_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only the core database is read: with the vault's and the acquirer's unset, no embedded
    PostgreSQL is started (nor initialised under the data directory) for them."""
    monkeypatch.delenv("VAULT_DATABASE_URL")
    monkeypatch.delenv("ACQUIRER_DATABASE_URL")
    started: list[Path] = []

    def start_cluster(data_dir: Path) -> None:
        started.append(data_dir)
        raise AssertionError(f"an embedded server was started in {data_dir}")

    monkeypatch.setattr("remit.databases.start_cluster", start_cluster)
    assert main(["jobs", "failed"]) == 0
    assert started == []
    assert list(tmp_path.iterdir()) == []


def test_claims_put_back_are_not_listed_as_attempts(
    core_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job claimed before it was due and put back 30 times, then failed on its only run,
    made one attempt of its one."""
    [failed] = _stage(core_env, ("payments.expire_authorization", "failed", None, FAILED_AT))

    async def put_backs() -> None:
        engine = make_engine(core_env, pool_size=1)
        try:
            async with engine.begin() as db:
                await db.execute(
                    text("UPDATE jobs SET attempts = 31, max_attempts = 31, put_backs = 30")
                )
        finally:
            await dispose(engine)

    asyncio.run(put_backs())
    assert main(["jobs", "failed"]) == 1
    assert capsys.readouterr().out.splitlines()[2].split() == [
        "2026-11-03T01:00:00Z", str(failed), "payments.expire_authorization", "1/1", "acct_1"
    ]  # fmt: skip
