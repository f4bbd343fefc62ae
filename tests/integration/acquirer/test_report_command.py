"""`remit settlement-report`: the days it takes are those `remit reconcile` takes (over in UTC,
today only as a partial report), and with `--output` the file holds a whole report, ending with
its own count and totals, or is left as it was."""

import asyncio
import csv
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from remit.acquirer import report_command
from remit.acquirer.service import AcquirerService
from remit.acquirer.settlement_clock import record_settlement_grace
from remit.cli import main
from remit.core.clock import FixedClock
from remit.storage.engine import dispose, make_engine
from tests.conftest import _truncate_all
from tests.integration.acquirer.support import MERCHANT, authorization_request
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

# A day that is over, as the command wants it.
SETTLED_AT = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DAY = SETTLED_AT.date().isoformat()


@pytest.fixture
def platform_env(
    databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[WorkerDatabases]:
    monkeypatch.setenv("DATABASE_URL", databases.core_url)
    monkeypatch.setenv("VAULT_DATABASE_URL", databases.vault_url)
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", databases.acquirer_url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path / "data"))
    yield databases

    async def clean() -> None:
        engine = make_engine(databases.acquirer_url, pool_size=1)
        try:
            await _truncate_all(engine)
        finally:
            await dispose(engine)

    asyncio.run(clean())


def settle(acquirer_url: str, at: datetime = SETTLED_AT) -> None:
    """Three usd captures and one in jpy, settled at `at`; the last, of 3000 usd, a partial
    capture of 4500 held, which released 1500."""

    async def run() -> None:
        engine = make_engine(acquirer_url, pool_size=1)
        service = AcquirerService(engine, FixedClock(at))
        try:
            for n, (amount, currency) in enumerate([(1000, "usd"), (2000, "usd"), (500, "jpy"),
                                                    (3000, "usd")]):  # fmt: skip
                partial = n == 3
                held = await service.authorize(
                    authorization_request(
                        reference=f"sale-{n}", amount_minor=amount + 1500 if partial else amount,
                        currency=currency, capture=not partial,
                    )
                )  # fmt: skip
                if partial:
                    assert held.operation.authorization_id is not None
                    await service.capture(
                        f"sale-{n}-capture", held.operation.authorization_id, amount,
                        keep_open=False,
                    )  # fmt: skip
        finally:
            await dispose(engine)

    asyncio.run(run())


def test_the_report_is_written_whole_with_its_trailer_and_replaces_the_old_one(
    platform_env: WorkerDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two rows: the report is written over several.
    monkeypatch.setattr(report_command, "MAX_PAGE_SIZE", 2)
    settle(platform_env.acquirer_url)
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    path = out_dir / "settlement.csv"
    path.write_text("an older report\n")
    assert main(["settlement-report", "--date", DAY, "--output", str(path)]) == 0
    lines = path.read_text().splitlines()
    rows = list(csv.DictReader(lines[:-1]))
    # All settled at one instant, so in the order of their operation ids.
    assert sorted(row["reference"] for row in rows) == [
        "sale-0", "sale-1", "sale-2", "sale-3-capture"
    ]  # fmt: skip
    assert [row["released"] for row in rows if row["reference"] == "sale-3-capture"] == ["1500"]
    assert [row["operation_id"] for row in rows] == sorted(row["operation_id"] for row in rows)
    assert lines[-1] == (
        f"# end date={DAY} rows=4 jpy.rows=1 jpy.amount=500 jpy.fee=8 jpy.released=0 "
        "usd.rows=3 usd.amount=6000 usd.fee=90 usd.released=1500"
    )
    assert os.listdir(out_dir) == ["settlement.csv"]


def test_an_output_path_that_cannot_be_written_is_refused_at_once(
    platform_env: WorkerDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-directory" / "settlement.csv"
    assert main(["settlement-report", "--date", DAY, "--output", str(missing)]) == 2
    assert f"cannot write {missing}" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_a_report_that_fails_part_way_leaves_the_file_as_it_was(
    platform_env: WorkerDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", f"postgresql://remit@127.0.0.1:{free_port()}/x")
    out_dir = tmp_path / "reports"
    out_dir.mkdir()
    path = out_dir / "settlement.json"
    path.write_text("yesterday's report\n")
    command = ["settlement-report", "--date", DAY, "--format", "json", "--output", str(path)]
    assert main(command) == 75  # its database out of reach: retry later
    err = capsys.readouterr().err
    assert err.startswith("remit settlement-report: ")
    assert "Connection refused" in err
    assert "Traceback" not in err
    assert path.read_text() == "yesterday's report\n"
    assert os.listdir(out_dir) == ["settlement.json"]


def test_a_day_not_begun_is_refused_as_reconcile_refuses_it(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["settlement-report", "--date", tomorrow, "--allow-partial"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("remit settlement-report: ")
    assert "has not begun" in err


def test_today_is_reported_only_when_asked_for_and_then_marked_partial(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    settle(platform_env.acquirer_url, at=now)
    today = now.date().isoformat()
    assert main(["settlement-report", "--date", today]) == 2
    captured = capsys.readouterr()
    assert "--allow-partial" in captured.err
    assert captured.out == ""

    assert main(["settlement-report", "--date", today, "--allow-partial"]) == 0
    trailer = capsys.readouterr().out.splitlines()[-1]
    assert trailer.startswith(f"# end date={today} partial=true rows=4 ")
    command = ["settlement-report", "--date", today, "--allow-partial", "--format", "json"]
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["partial"] is True


def test_the_json_report_of_one_merchant_names_it_on_the_report_and_on_each_row(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str]
) -> None:
    settle(platform_env.acquirer_url)
    command = ["settlement-report", "--date", DAY, "--format", "json", "--merchant", MERCHANT]
    assert main(command) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["date"], document["merchant_id"], document["partial"]) == (
        DAY,
        MERCHANT,
        False,
    )
    assert [row["merchant_id"] for row in document["rows"]] == [MERCHANT] * 4
    assert document["row_count"] == 4


def test_it_starts_no_embedded_server_for_the_databases_it_does_not_read(
    platform_env: WorkerDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the acquirer's database is read: with the core's and the vault's unset, no
    embedded PostgreSQL is started for them."""
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("VAULT_DATABASE_URL")
    started: list[Path] = []

    def start_cluster(data_dir: Path) -> None:
        started.append(data_dir)
        raise AssertionError(f"an embedded server was started in {data_dir}")

    monkeypatch.setattr("remit.databases.start_cluster", start_cluster)
    assert main(["settlement-report", "--date", DAY, "--format", "json"]) == 0
    assert started == []


def test_the_days_it_takes_are_told_by_the_acquirer_databases_clock_not_the_hosts(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The operations are stamped by the database's clock: on a host whose clock runs two days
    ahead, tomorrow has still not begun."""
    ahead = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr("remit.core.clock.SystemClock.now", lambda _self: ahead)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert main(["settlement-report", "--date", tomorrow, "--allow-partial"]) == 2
    assert "has not begun" in capsys.readouterr().err


def test_a_day_within_its_grace_is_to_run_again_shortly_not_refused(
    platform_env: WorkerDatabases, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A nightly report of the day before, started at 00:00:30 by the acquirer database's
    clock, exits 75 (run it again later, at the time it names), not 2 (running it again will
    not help): a minute later the same command reports the day whole."""
    settle(platform_env.acquirer_url)
    just_over = datetime.combine(SETTLED_AT.date() + timedelta(days=1), time.min, tzinfo=UTC)
    clock = FixedClock(just_over + timedelta(seconds=30))

    async def database_clock(_engine: object) -> FixedClock:
        return clock

    monkeypatch.setattr("remit.acquirer.settlement_clock.acquirer_clock", database_clock)
    monkeypatch.setenv("REMIT_STATEMENT_TIMEOUT_S", "10")
    monkeypatch.setenv("REMIT_DATABASE_POOL_TIMEOUT_S", "5")
    path = tmp_path / "settlement.csv"
    assert main(["settlement-report", "--date", DAY, "--output", str(path)]) == 75
    err = capsys.readouterr().err
    assert err.startswith("remit settlement-report: ")
    assert f"Retry from {(just_over + timedelta(seconds=5 + 3 * 10 + 2)):%Y-%m-%d %H:%M:%S}" in err
    assert not path.exists()

    clock.advance(60)
    assert main(["settlement-report", "--date", DAY, "--output", str(path)]) == 0
    assert path.read_text().splitlines()[-1].startswith(f"# end date={DAY} rows=4 ")


def test_a_day_is_whole_only_after_the_grace_the_acquirer_recorded_when_longer_than_its_own(
    platform_env: WorkerDatabases, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The acquirer runs with a longer statement timeout than the shell the command runs from:
    its transactions may commit on the day longer after midnight than this shell's settings
    say. The command waits the grace the acquirer recorded when it started; an acquirer
    started later with a shorter one does not shorten it."""
    # The shell's own grace, well under the 5 minutes below, whatever shell the test runs from.
    monkeypatch.setenv("REMIT_STATEMENT_TIMEOUT_S", "10")
    monkeypatch.setenv("REMIT_DATABASE_POOL_TIMEOUT_S", "5")
    settle(platform_env.acquirer_url)

    async def acquirer_started_with(grace: timedelta) -> None:
        engine = make_engine(platform_env.acquirer_url, pool_size=1)
        try:
            await record_settlement_grace(engine, grace)
        finally:
            await dispose(engine)

    asyncio.run(acquirer_started_with(timedelta(minutes=10)))
    asyncio.run(acquirer_started_with(timedelta(seconds=97)))  # another, started later
    just_over = datetime.combine(SETTLED_AT.date() + timedelta(days=1), time.min, tzinfo=UTC)
    clock = FixedClock(just_over + timedelta(minutes=5))  # the shell's own grace long past

    async def database_clock(_engine: object) -> FixedClock:
        return clock

    monkeypatch.setattr("remit.acquirer.settlement_clock.acquirer_clock", database_clock)
    assert main(["settlement-report", "--date", DAY]) == 75
    assert f"Retry from {just_over + timedelta(minutes=10):%Y-%m-%d %H:%M:%S}" in (
        capsys.readouterr().err
    )
    clock.advance(5 * 60)
    assert main(["settlement-report", "--date", DAY]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"# end date={DAY} rows=4 ")
