"""The settlement report over gRPC, a page at a time: every row exactly once, in order."""

import base64
import json
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from tests.integration.acquirer.support import MERCHANT, NOW, authorization_request
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


async def page(stub: Stub, size: int, token: str = "") -> pb.GetSettlementReportResponse:
    return await stub.GetSettlementReport(
        pb.GetSettlementReportRequest(
            date=DAY, page_size=size, page_token=token, allow_partial=True
        ),
        timeout=10,
    )


async def test_a_report_is_the_day_as_it_stood_at_its_first_page(
    acquirer_engine: AsyncEngine,
) -> None:
    """Two captures commit between the first and the second page: "late", whose transaction
    took its settlement time before the first page's row and was still open when that page was
    read, and "meanwhile", settled after. Read as the day stood at each page, the report showed
    "meanwhile" and missed "late": it matched the day at no moment. It holds what had
    committed at its first page, each row once; the report read again holds both."""
    clock = FixedClock(NOW)
    sale = await AcquirerService(acquirer_engine, clock).authorize(
        authorization_request(reference="first", capture=True)
    )
    clock.advance(1)
    await settle(acquirer_engine, clock, "second")
    async with acquirer_engine.connect() as in_flight:
        await in_flight.begin()
        await in_flight.execute(
            text(
                "INSERT INTO operations (id, reference, kind, authorization_id, amount_minor, "
                "currency, merchant_id, approved, request, fee_minor, settled_at, created_at) "
                "VALUES ('op_late', 'late', 'capture', :auth, 100, 'usd', :merchant, true, "
                "'{}'::jsonb, 2, :settled, :settled)"
            ),
            {
                "auth": sale.operation.authorization_id,
                "merchant": MERCHANT,
                "settled": NOW - timedelta(seconds=1),
            },
        )
        async with running_acquirer(acquirer_engine) as stub:
            first = await page(stub, 1)
            await in_flight.commit()
            clock.advance(60)
            await settle(acquirer_engine, clock, "meanwhile")
            rest = await page(stub, 5, first.next_page_token)
            again = await all_pages(stub, 2)
    assert [row.reference for row in first.rows] == ["first"]
    assert [row.reference for row in rest.rows] == ["second"]
    assert not rest.next_page_token
    assert [row.reference for p in again for row in p.rows] == [
        "late",
        "first",
        "second",
        "meanwhile",
    ]


async def test_a_row_restored_from_another_cluster_is_in_the_report(
    acquirer_engine: AsyncEngine,
) -> None:
    """A logical dump restored into another cluster keeps the transaction ids its rows were
    written under there, which this cluster has not reached: such a row committed before
    anything here did, and is in the report, not hidden as written after its snapshot."""
    clock = FixedClock(NOW)
    await settle(acquirer_engine, clock, "restored", "local")
    async with acquirer_engine.begin() as db:
        await db.execute(
            text(
                "UPDATE operations SET recorded_xid = '900000000000'::xid8"
                " WHERE reference = 'restored'"
            )
        )
    async with running_acquirer(acquirer_engine) as stub:
        pages = await all_pages(stub, 1)
    assert sorted(row.reference for p in pages for row in p.rows) == ["local", "restored"]


def with_snapshot(token: str, snapshot: str) -> str:
    """`token` with its snapshot replaced by `snapshot`."""
    document = json.loads(base64.urlsafe_b64decode(token))
    document["snapshot"] = snapshot
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


async def test_a_page_request_of_another_report_is_refused(acquirer_engine: AsyncEngine) -> None:
    clock = FixedClock(NOW)
    await settle(acquirer_engine, clock, "one", "two")
    async with running_acquirer(acquirer_engine) as stub:
        first = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=DAY, page_size=1, allow_partial=True), timeout=10
        )
        token = first.next_page_token
        refused = [
            # A snapshot PostgreSQL would not read (0 is no transaction id): the caller's
            # error, not remit's.
            *(
                pb.GetSettlementReportRequest(
                    date=DAY,
                    page_size=1,
                    page_token=with_snapshot(token, snapshot),
                    allow_partial=True,
                )
                for snapshot in ["0:0:", "0:5:"]
            ),
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


# The acquirer's grace in `running_acquirer`.
GRACE = timedelta(seconds=97)
JUST_OVER = NOW.replace(hour=0) + timedelta(days=1)


def request(token: str = "", *, allow_partial: bool) -> pb.GetSettlementReportRequest:
    return pb.GetSettlementReportRequest(
        date=DAY, page_size=1, page_token=token, allow_partial=allow_partial
    )


async def test_a_report_read_within_the_grace_stays_partial_on_every_page(
    acquirer_engine: AsyncEngine,
) -> None:
    """The first page read at 00:00:30, within the grace, is partial; so is every page after
    it, whenever it is read, since its rows are that page's snapshot. A later page asked for
    without allow_partial is refused, saying why, not served as whole."""
    await settle(acquirer_engine, FixedClock(NOW), "sale-1", "sale-2", "sale-3")
    clock = FixedClock(JUST_OVER + timedelta(seconds=30))
    async with running_acquirer(acquirer_engine, clock=clock) as stub:
        first = await stub.GetSettlementReport(request(allow_partial=True), timeout=10)
        clock.advance(120)  # 00:02:30: the day is over now
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetSettlementReport(
                request(first.next_page_token, allow_partial=False), timeout=10
            )
        second = await stub.GetSettlementReport(
            request(first.next_page_token, allow_partial=True), timeout=10
        )
        whole = await stub.GetSettlementReport(request(allow_partial=False), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "continues a partial report" in (refused.value.details() or "")
    assert (first.partial, second.partial, whole.partial) == (True, True, False)


async def test_a_report_whole_at_its_first_page_is_whole_on_every_page_whatever_the_clock_says(
    acquirer_engine: AsyncEngine,
) -> None:
    """The first page read just after the grace is whole. The next is read on a clock a
    moment behind (another replica's, or a reading stepped back), by which the day is not
    over: it is the first page's snapshot all the same, served whole, not refused."""
    await settle(acquirer_engine, FixedClock(NOW), "sale-1", "sale-2")
    clock = FixedClock(JUST_OVER + GRACE + timedelta(seconds=0.5))
    async with running_acquirer(acquirer_engine, clock=clock) as stub:
        first = await stub.GetSettlementReport(request(allow_partial=False), timeout=10)
        clock.advance(-1.5)  # 00:01:36, within the grace by this clock
        second = await stub.GetSettlementReport(
            request(first.next_page_token, allow_partial=False), timeout=10
        )
    assert (first.partial, second.partial) == (False, False)
    assert sorted(row.reference for row in [*first.rows, *second.rows]) == ["sale-1", "sale-2"]
