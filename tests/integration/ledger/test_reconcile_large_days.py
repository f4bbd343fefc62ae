"""A day whose settlement report is larger than one gRPC message reconciles, a page at a time.

Against the real acquirer over gRPC, with the client's receive limit lowered from 4 MB to
64 KB (and the page size with it) so that a few thousand rows stand for the 26,500 that once
filled a whole day's single response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.ledger import settlement_report
from remit.ledger.reconcile import RowStatus
from remit.ledger.service import LedgerService
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.acquirer.support import MERCHANT, NOW, authorization_request

pytestmark = pytest.mark.anyio

ROWS = 2000
RECEIVE_LIMIT = 64 * 1024
DAY = NOW.date().isoformat()


async def settle_many(engine: AsyncEngine, rows: int) -> None:
    """`rows` captures of one authorization, all settled at NOW, written in one statement."""
    held = await AcquirerService(engine, FixedClock(NOW)).authorize(
        authorization_request(reference="held", amount_minor=99_999_999)
    )
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO operations (id, reference, kind, authorization_id, amount_minor, "
                "currency, merchant_id, approved, request, fee_minor, settled_at, created_at) "
                "SELECT 'op_bulk' || n, 'bulk-' || n, 'capture', :auth, 100 + n, 'usd', "
                ":merchant, true, '{}'::jsonb, 2, :now, :now FROM generate_series(1, :rows) n"
            ),
            {
                "auth": held.operation.authorization_id,
                "merchant": MERCHANT,
                "now": NOW,
                "rows": rows,
            },
        )


@asynccontextmanager
async def acquirer_with_small_messages(
    engine: AsyncEngine,
) -> AsyncIterator[acquirer_pb2_grpc.AcquirerServiceAsyncStub]:
    server = grpc.aio.server(interceptors=acquirer_interceptors(FaultConfig()))
    # The day is over for the acquirer too: it reports only such days whole.
    day_over = FixedClock(NOW + timedelta(days=1))
    acquirer_registration(AcquirerService(engine, day_over)).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        options = [("grpc.max_receive_message_length", RECEIVE_LIMIT)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            yield acquirer_pb2_grpc.AcquirerServiceStub(channel)
    finally:
        await server.stop(None)


async def test_a_day_larger_than_a_message_reconciles_every_row_once(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settlement_report, "PAGE_SIZE", 250)
    await settle_many(acquirer_engine, ROWS)
    async with acquirer_with_small_messages(acquirer_engine) as stub:
        # The day in one response is more than the client takes.
        with pytest.raises(grpc.aio.AioRpcError) as too_large:
            await stub.GetSettlementReport(pb.GetSettlementReportRequest(date=DAY), timeout=30)
        assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        day_over = FixedClock(NOW + timedelta(days=1))
        result = await LedgerService(core_engine, day_over, acquirer=stub).reconcile(DAY)
    # The ledger holds none of them: each is one row, missing there, none lost or doubled.
    assert len(result.rows) == ROWS
    assert {row.status for row in result.rows} == {RowStatus.MISSING_IN_LEDGER}
    assert {row.reference for row in result.rows} == {f"bulk-{n}" for n in range(1, ROWS + 1)}
    assert sum(row.acquirer_amount or 0 for row in result.rows) == sum(
        100 + n for n in range(1, ROWS + 1)
    )
