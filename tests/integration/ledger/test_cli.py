"""`remit ledger verify` and `remit reconcile` exit non-zero exactly when something is wrong,
with a code that tells findings (1) from refused input (2) and from their own failure (3)."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from remit.accounts.service import AccountsService
from remit.cli import main
from remit.core.clock import FixedClock, SystemClock
from remit.core.errors import RemitError
from remit.core.settlement_days import settlement_day
from remit.ledger import postings as ledger
from remit.ledger.jobs import advance_payouts
from remit.ledger.payouts import SUBMISSION_DELAY, create_payout
from remit.storage.embedded import EmbeddedCluster, to_sqlalchemy_url
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config
from tests.conftest import _truncate_all
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.fake_acquirer import FakeAcquirer, serving, settlement_row
from tests.integration.ledger.ledger_steps import charge_available_at_once
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases, scratch_database


@pytest.fixture
def platform_env(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> Iterator[WorkerDatabases]:
    monkeypatch.setenv("DATABASE_URL", databases.core_url)
    monkeypatch.setenv("VAULT_DATABASE_URL", databases.vault_url)
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", databases.acquirer_url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    # The acquirer the commands call is a fake in this process, which checks no token.
    monkeypatch.setenv("REMIT_INTERNAL_AUTH", "off")
    yield databases

    async def clean() -> None:
        engine = make_engine(databases.core_url, pool_size=1)
        try:
            await _truncate_all(engine)
        finally:
            await dispose(engine)

    asyncio.run(clean())


def seed(core_url: str) -> str:
    async def run() -> str:
        engine = make_engine(core_url, pool_size=1)
        clock = FixedClock(T0)
        try:
            account = (await AccountsService(engine, clock).create_account()).account.id
            async with engine.begin() as db:
                await ledger.record_charge_captured(
                    db,
                    account_id=account,
                    charge_id="ch_cli",
                    gross_minor=4_200,
                    currency="usd",
                    now=clock.now(),
                )
            return account
        finally:
            await dispose(engine)

    return asyncio.run(run())


def tamper(core_url: str) -> None:
    async def run() -> None:
        engine = make_engine(core_url, pool_size=1)
        try:
            async with engine.begin() as db:
                await db.execute(text("SET LOCAL session_replication_role = replica"))
                await db.execute(text("UPDATE ledger_postings SET amount_minor = amount_minor * 2"))
        finally:
            await dispose(engine)

    asyncio.run(run())


def test_ledger_verify_exits_zero_on_a_sound_ledger_and_one_after_tampering(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(platform_env.core_url)
    assert main(["ledger", "verify"]) == 0
    assert "OK" in capsys.readouterr().out
    tamper(platform_env.core_url)
    assert main(["ledger", "verify"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENCES FOUND" in out
    assert "balance_mismatch" in out
    assert "chain_break" in out


def paid_out(core_url: str) -> str:
    """A paid payout of 1000 from a charge's available funds; returns its id."""

    async def run() -> str:
        engine = make_engine(core_url, pool_size=1)
        clock = FixedClock(T0)
        try:
            account = (await AccountsService(engine, clock).create_account()).account.id
            async with engine.begin() as db:
                await charge_available_at_once(db, account, clock, gross_minor=2_000)
                payout = await create_payout(
                    db, account_id=account, amount=1_000, currency="usd", now=clock.now()
                )
            clock.advance((SUBMISSION_DELAY + timedelta(days=2)).total_seconds())
            async with engine.begin() as db:
                assert await advance_payouts(db, now=clock.now()) == 1
            return payout.id
        finally:
            await dispose(engine)

    return asyncio.run(run())


def test_ledger_verify_exits_one_on_a_payout_paid_out_for_another_amount(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    payout_id = paid_out(platform_env.core_url)
    assert main(["ledger", "verify"]) == 0
    capsys.readouterr()
    with psycopg.connect(_libpq(platform_env.core_url)) as db:
        # One more pair of legs in po:paid: it took 999 out of transit and paid out 999.
        for name, amount in (("payouts_in_transit", 1), ("paid_out", -1)):
            db.execute(
                "INSERT INTO ledger_postings "
                "(account_id, transaction_id, ledger_account_id, amount_minor) "
                "SELECT account_id, %s, id, %s FROM ledger_accounts WHERE name = %s",
                (f"{payout_id}:paid", amount, name),
            )
    assert main(["ledger", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"{payout_id}:paid moved 999 on paid_out, the payout's amount 1000 needs 1000" in out


def _libpq(url: str) -> str:
    return to_sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def _revision(url: str) -> str | None:
    with psycopg.connect(_libpq(url)) as db:
        if db.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
            return None
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def _one_refusal(err: str) -> str:
    assert err.count("\n") == 1
    assert err.startswith("remit ledger verify: ")
    assert "Traceback" not in err
    return err


def test_ledger_verify_refuses_a_database_never_migrated_and_leaves_it_so(
    platform_env: WorkerDatabases,
    pg_cluster: EmbeddedCluster,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with scratch_database(pg_cluster, "verify_unmigrated") as url:
        monkeypatch.setenv("DATABASE_URL", url)
        assert main(["ledger", "verify"]) == 2
        err = _one_refusal(capsys.readouterr().err)
        assert "has no remit schema yet: run `remit migrate` first" in err
        assert _revision(url) is None


@pytest.mark.parametrize("where", ["behind", "ahead"])
def test_ledger_verify_refuses_a_schema_not_at_head_and_leaves_it_there(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """An audit from another remit version must not migrate the database it audits: it says
    so in one line and exits 2, and the schema stays where it was."""
    url = platform_env.core_url
    head = _revision(url)
    assert head is not None
    script = ScriptDirectory.from_config(alembic_config("core", url))
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    stamped = previous if where == "behind" else "9999_from_a_newer_remit"
    with psycopg.connect(_libpq(url), autocommit=True) as db:
        db.execute("UPDATE alembic_version SET version_num = %s", (stamped,))
    try:
        assert main(["ledger", "verify"]) == 2
        err = _one_refusal(capsys.readouterr().err)
        assert _revision(url) == stamped
    finally:
        with psycopg.connect(_libpq(url), autocommit=True) as db:
            db.execute("UPDATE alembic_version SET version_num = %s", (head,))
    assert f"is at schema revision {stamped}" in err
    assert "never changes the schema" in err
    if where == "behind":
        assert f"behind this remit version's {head}: run `remit migrate` first" in err
    else:
        assert "which this remit version does not know" in err


def test_reconcile_prints_a_table_and_exits_by_the_result(
    platform_env: WorkerDatabases,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = seed(platform_env.core_url)
    fake = FakeAcquirer([settlement_row("capture", "ch_cli", 4_200, account)])
    with serving(fake) as port:
        monkeypatch.setenv("REMIT_ACQUIRER_PORT", str(port))
        assert main(["reconcile", "--date", T0.date().isoformat()]) == 0
        clean = capsys.readouterr().out
        fake.rows = [settlement_row("capture", "ch_cli", 4_199, account)]
        assert main(["reconcile", "--date", T0.date().isoformat()]) == 1
        mismatch = capsys.readouterr().out
    assert "matched 1," in clean
    assert "amount_mismatch" in mismatch
    assert "4200" in mismatch
    assert "4199" in mismatch


def test_reconcile_refuses_a_malformed_date(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", "--date", "02/11/2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_reconcile_refuses_a_day_not_begun(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["reconcile", "--date", tomorrow]) == 2
    refusal = capsys.readouterr().err.splitlines()[-1]
    assert refusal.startswith("remit reconcile: ")
    assert "has not begun" in refusal


def test_reconcile_runs_today_only_when_a_partial_result_is_asked_for(
    platform_env: WorkerDatabases,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = datetime.now(UTC).date().isoformat()
    with serving(FakeAcquirer()) as port:
        monkeypatch.setenv("REMIT_ACQUIRER_PORT", str(port))
        assert main(["reconcile", "--date", today]) == 2
        assert "--allow-partial" in capsys.readouterr().err
        assert main(["reconcile", "--date", today, "--allow-partial"]) == 0
    assert "PARTIAL" in capsys.readouterr().out


def test_reconcile_of_a_day_within_the_acquirers_grace_is_to_run_again_shortly(
    platform_env: WorkerDatabases,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The nightly `remit reconcile` of the day before, started just after midnight, while the
    acquirer's last operations of the day may still be committing: exit 75, run it again at
    the time it names, not 2, which says running it again will not help."""
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    over_at = datetime.combine(yesterday + timedelta(days=1), time.min, tzinfo=UTC)
    with pytest.raises(RemitError) as not_yet:
        settlement_day(
            yesterday.isoformat(), now=over_at, allow_partial=False, grace=timedelta(seconds=97)
        )
    with serving(FakeAcquirer(refusal=not_yet.value)) as port:
        monkeypatch.setenv("REMIT_ACQUIRER_PORT", str(port))
        assert main(["reconcile", "--date", yesterday.isoformat()]) == 75
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("remit reconcile: ")
    assert f"Retry from {over_at + timedelta(seconds=97):%Y-%m-%d %H:%M:%S} UTC" in err


@pytest.mark.parametrize(
    ("command", "name"),
    [(["reconcile", "--date", "2026-11-02"], "reconcile"), (["ledger", "verify"], "ledger verify")],
)
def test_a_database_out_of_reach_is_a_failure_to_retry_later(
    platform_env: WorkerDatabases,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    name: str,
) -> None:
    """Not 1, which says the books disagree, nor 3, a bug, and no traceback: one line an
    operator reads, and 75 for a script to try again later."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://remit:s3cret@127.0.0.1:{free_port()}/remit")
    assert main(command) == 75
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"remit {name}: ")
    assert "Connection refused" in err
    assert "Traceback" not in err
    assert "s3cret" not in err


def test_reconcile_on_a_host_whose_clock_runs_ahead_tells_today_by_the_database(
    platform_env: WorkerDatabases,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = datetime.now(UTC).date().isoformat()
    host_now = SystemClock.now
    # By its host's clock today ended days ago; by the database's it is not over.
    monkeypatch.setattr(SystemClock, "now", lambda self: host_now(self) + timedelta(days=3))
    assert main(["reconcile", "--date", today]) == 2
    assert "--allow-partial" in capsys.readouterr().err


def test_ledger_verify_starts_no_embedded_server_for_the_databases_it_does_not_read(
    platform_env: WorkerDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_DATABASE_URL")
    monkeypatch.delenv("ACQUIRER_DATABASE_URL")
    started: list[object] = []

    def start_cluster(data_dir: object) -> None:
        started.append(data_dir)
        raise AssertionError(f"an embedded server was started in {data_dir}")

    monkeypatch.setattr("remit.databases.start_cluster", start_cluster)
    assert main(["ledger", "verify"]) == 0
    assert started == []
