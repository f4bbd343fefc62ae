"""The settlement report over gRPC, a page at a time: every row exactly once, in order."""

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from tests.integration.acquirer.support import NOW, authorization_request
from tests.integration.acquirer.test_grpc import Stub, running_acquirer

pytestmark = pytest.mark.anyio

DAY = NOW.date().isoformat()


async def settle(engine: AsyncEngine, clock: FixedClock, *references: str) -> None:
    service = AcquirerService(engine, clock)
    for reference in references:
        await service.authorize(authorization_request(reference=reference, capture=True))


async def all_pages(stub: Stub, page_size: int) -> list[pb.GetSettlementReportResponse]:
    pages, token = [], ""
    while True:
        page = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(
                date=DAY, page_size=page_size, page_token=token, allow_partial=True
            ),
            timeout=10,
        )
        pages.append(page)
        if not page.next_page_token:
            return pages
        token = page.next_page_token


async def test_pages_hold_every_row_once_even_rows_settled_at_one_instant(
    acquirer_engine: AsyncEngine,
) -> None:
    """Seven captures settle at the same instant, two a second later: pages of three end
    inside a run of equal settlement times, and the last page says it is the last."""
    clock = FixedClock(NOW)
    await settle(acquirer_engine, clock, *(f"same-{n}" for n in range(7)))
    clock.advance(1)
    await settle(acquirer_engine, clock, "later-1", "later-2")
    clock.advance(24 * 3600)
    await settle(acquirer_engine, clock, "next-day")
    async with running_acquirer(acquirer_engine) as stub:
        pages = await all_pages(stub, 3)
        whole = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=DAY, allow_partial=True), timeout=10
        )
    assert [len(page.rows) for page in pages] == [3, 3, 3]
    paged = [row.operation_id for page in pages for row in page.rows]
    assert paged == [row.operation_id for row in whole.rows]
    assert len(set(paged)) == 9
    assert not whole.next_page_token


async def test_a_row_settled_while_paging_comes_on_a_later_page(
    acquirer_engine: AsyncEngine,
) -> None:
    clock = FixedClock(NOW)
    await settle(acquirer_engine, clock, "first")
    clock.advance(1)
    await settle(acquirer_engine, clock, "second")
    async with running_acquirer(acquirer_engine) as stub:
        first = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=DAY, page_size=1, allow_partial=True), timeout=10
        )
        clock.advance(60)
        await settle(acquirer_engine, clock, "meanwhile")
        rest = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(
                date=DAY, page_size=5, page_token=first.next_page_token, allow_partial=True
            ),
            timeout=10,
        )
    assert [row.reference for row in first.rows] == ["first"]
    assert [row.reference for row in rest.rows] == ["second", "meanwhile"]
    assert not rest.next_page_token


async def test_a_page_request_of_another_report_is_refused(acquirer_engine: AsyncEngine) -> None:
    clock = FixedClock(NOW)
    await settle(acquirer_engine, clock, "one", "two")
    async with running_acquirer(acquirer_engine) as stub:
        first = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=DAY, page_size=1, allow_partial=True), timeout=10
        )
        token = first.next_page_token
        refused = [
            pb.GetSettlementReportRequest(
                date="2031-03-13", page_size=1, page_token=token, allow_partial=True
            ),
            pb.GetSettlementReportRequest(
                date=DAY,
                merchant_id="acct_1Other",
                page_size=1,
                page_token=token,
                allow_partial=True,
            ),
            pb.GetSettlementReportRequest(
                date=DAY, page_size=1, page_token="garbage", allow_partial=True
            ),
            pb.GetSettlementReportRequest(date=DAY, page_size=-1, allow_partial=True),
        ]
        for request in refused:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.GetSettlementReport(request, timeout=10)
            assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
