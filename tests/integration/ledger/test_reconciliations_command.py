"""`remit reconciliations` lists the stored reconciliation runs through the core's LedgerService,
the latest to finish first, each with its day and scope, start and end, partial and superseded
marks and its counts, as many as --limit asks for."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.cli import main
from remit.core.clock import FixedClock
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.ledger.grpc import ledger_registration
from remit.ledger.service import LedgerService
from remit_api.acquirer.v1 import acquirer_pb2 as acquirer_pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.ledger.v1 import ledger_pb2 as ledger_pb
from remit_api.ledger.v1 import ledger_pb2_grpc
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.fake_acquirer import FakeAcquirer, serving, settlement_row
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

YESTERDAY = (T0 - timedelta(days=1)).date().isoformat()
TODAY = T0.date().isoformat()
# How long the acquirer takes to send each report: the time between a run's start and end.
REPORT_TAKES_S = 7


class SlowAcquirer(FakeAcquirer):
    def __init__(self, clock: FixedClock, rows: list[acquirer_pb.SettlementRow]) -> None:
        super().__init__(rows=rows)
        self._clock = clock

    def GetSettlementReport(  # noqa: N802 (the RPC's name)
        self, request: acquirer_pb.GetSettlementReportRequest, context: Any
    ) -> acquirer_pb.GetSettlementReportResponse:
        self._clock.advance(REPORT_TAKES_S)
        return super().GetSettlementReport(request, context)


@pytest.fixture
def cli_env(databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", databases.core_url)
    monkeypatch.setenv("VAULT_DATABASE_URL", databases.vault_url)
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", databases.acquirer_url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    # The core the command calls is served in this process, without the token check.
    monkeypatch.setenv("REMIT_INTERNAL_AUTH", "off")


@asynccontextmanager
async def core_serving(service: LedgerService) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    ledger_registration(service).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield str(port)
    finally:
        await server.stop(0)


async def remit(*args: str) -> int:
    """`remit ARGS` in this process, off the event loop that serves the core it calls."""
    return await asyncio.to_thread(main, list(args))


async def old_run(engine: AsyncEngine) -> None:
    """A run stored before runs recorded their start, finished before any other."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO reconciliations (id, date, account_id, created_at, matched_count, "
                "missing_in_ledger_count, missing_at_acquirer_count, amount_mismatch_count) "
                "VALUES ('recon_old', '2026-10-30', NULL, :at, 3, 0, 0, 0)"
            ),
            {"at": T0 - timedelta(days=2)},
        )


async def test_the_runs_are_listed_latest_first_with_what_each_covered_and_found(
    cli_env: None,
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await old_run(core_engine)
    acquirer = SlowAcquirer(clock, [settlement_row("capture", "ch_lost", 1_000, account_id)])
    with serving(acquirer) as acquirer_port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{acquirer_port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            first = await service.reconcile(YESTERDAY)
            clock.advance(60)
            scoped = await service.reconcile(YESTERDAY, account_id)
            clock.advance(60)
            again = await service.reconcile(YESTERDAY)
            clock.advance(60)
            partial = await service.reconcile(TODAY, allow_partial=True)

            async with core_serving(service) as core_port:
                monkeypatch.setenv("REMIT_CORE_PORT", core_port)
                assert await remit("reconciliations", "--json") == 0
                listed = json.loads(capsys.readouterr().out)
                assert await remit("reconciliations", "--limit", "2", "--json") == 0
                bounded = json.loads(capsys.readouterr().out)
                assert await remit("reconciliations") == 0
                table = capsys.readouterr().out

    ids = [run["id"] for run in listed["data"]]
    assert ids == [partial.id, again.id, scoped.id, first.id, "recon_old"]
    assert listed["has_more"] is False
    assert [run["id"] for run in bounded["data"]] == [partial.id, again.id]
    assert bounded["has_more"] is True

    latest, _, _, superseded, old = listed["data"]
    finished = partial.created_at
    started = finished - timedelta(seconds=REPORT_TAKES_S)
    assert latest == {
        "id": partial.id,
        "date": TODAY,
        "account_id": None,
        "started": started.isoformat().replace("+00:00", "Z"),
        "finished": finished.isoformat().replace("+00:00", "Z"),
        "partial": True,
        "superseded_by": None,
        "counts": {
            "matched": 0,
            "missing_in_ledger": 1,
            "missing_at_acquirer": 0,
            "amount_mismatch": 0,
            "fee_mismatch": 0,
            "outcome_mismatch": 0,
        },
    }
    assert listed["data"][2]["account_id"] == account_id
    assert (superseded["superseded_by"], superseded["partial"]) == (again.id, False)
    assert (old["started"], old["counts"]["matched"]) == (None, 3)

    lines = table.splitlines()
    assert lines[0].split() == [
        "date", "scope", "started", "(UTC)", "finished", "(UTC)", "partial", "superseded",
        "by", "matched", "missing_in_ledger", "missing_at_acquirer", "amount_mismatch",
        "fee_mismatch", "outcome_mismatch", "id",
    ]  # fmt: skip
    assert [line.split()[-1] for line in lines[2:]] == ids
    assert lines[2].split()[:2] == [TODAY, "every"]
    assert "yes" in lines[2].split()
    assert again.id in lines[5].split()
    assert lines[6].split()[3] == "-"  # after "every account": the start, never recorded


async def test_a_limit_out_of_range_is_refused_before_the_core_is_asked(
    cli_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMIT_CORE_PORT", str(free_port()))
    for limit in ("0", "101"):
        assert await remit("reconciliations", "--limit", limit) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"remit reconciliations: --limit must be between 1 and 100, got {limit}"
        )


async def test_a_core_that_is_not_running_is_named_in_one_line(
    cli_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("REMIT_CORE_PORT", str(port))
    assert await remit("reconciliations") == 75  # retry later
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"remit reconciliations: the core is not reachable at 127.0.0.1:{port}; is it running?"
    )


async def test_the_rpc_refuses_a_limit_above_a_hundred_as_invalid(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    async with (
        core_serving(LedgerService(core_engine, clock)) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = ledger_pb2_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListReconciliations(ledger_pb.ListReconciliationsRequest(limit=101))
        # 0 asks for the default.
        empty = await stub.ListReconciliations(ledger_pb.ListReconciliationsRequest())
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (list(empty.data), empty.has_more) == ([], False)
