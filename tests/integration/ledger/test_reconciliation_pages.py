"""A reconciliation reaches a gRPC caller whatever the day's volume: Reconcile and
GetReconciliation answer its counts and first page, those that differ first, and
ListReconciliationRows the rest. Against a real PostgreSQL, over real gRPC."""

import base64
import json
from datetime import timedelta

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger import reconcile
from remit.ledger.reconciliation_pages import RowCursor, page_query
from remit.ledger.service import LedgerService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.fake_acquirer import FakeAcquirer, serving, settlement_row
from tests.integration.ledger.test_derived_ids_over_grpc import ledger_stub

pytestmark = pytest.mark.anyio
DAY = T0.date()

MATCHED = 30_000
# Stored after the matched rows, so that they come first only as the rows that differ.
AMOUNT_MISMATCHES = 5
MISSING_IN_LEDGER = 2
EVERY_ROW = MATCHED + AMOUNT_MISMATCHES + MISSING_IN_LEDGER
PAGE = 1000


async def busy_run(engine: AsyncEngine, clock: FixedClock) -> str:
    """A stored run of 30,000 matched captures, then 7 that differ: its rows written by one
    statement each, as large as a real day's (about 160 bytes a row over gRPC)."""
    async with engine.begin() as db:
        stored = await reconcile.store(db, day=DAY, account_id=None, rows=[], now=clock.now())
        await db.execute(
            text(
                "INSERT INTO reconciliation_rows (reconciliation_id, status, kind, reference,"
                " authorization_id, account_id, currency, ledger_amount, acquirer_amount,"
                " ledger_transaction_id, acquirer_fee, ledger_fee, differences)"
                " SELECT :id, status, 'capture', 'ch_' || lpad(n::text, 24, '0'),"
                " 'auth_' || lpad(n::text, 24, '0'), 'acct_1NbusyDayMerchant00000001', 'usd',"
                " 12345, acquirer_amount, 'txn_ch_' || lpad(n::text, 24, '0') || '_capture',"
                " 369, 369, differences"
                " FROM (SELECT n, 'matched' AS status, 12345 AS acquirer_amount,"
                " '[]'::jsonb AS differences FROM generate_series(1, :matched) AS n"
                " UNION ALL SELECT n, 'amount_mismatch', 12000,"
                ' \'[{"field": "amount", "ledger": "12345", "acquirer": "12000"}]\''
                " FROM generate_series(:matched + 1, :matched + :mismatches) AS n"
                " UNION ALL SELECT n, 'missing_in_ledger', 12345, '[]'"
                " FROM generate_series(:matched + :mismatches + 1, :every) AS n) AS made"
                " ORDER BY n"
            ),
            {
                "id": stored.id,
                "matched": MATCHED,
                "mismatches": AMOUNT_MISMATCHES,
                "every": EVERY_ROW,
            },
        )
        await db.execute(
            text(
                "UPDATE reconciliations SET matched_count = :matched,"
                " amount_mismatch_count = :mismatches, missing_in_ledger_count = :missing"
                " WHERE id = :id"
            ),
            {
                "id": stored.id,
                "matched": MATCHED,
                "mismatches": AMOUNT_MISMATCHES,
                "missing": MISSING_IN_LEDGER,
            },
        )
    return stored.id


async def every_page(
    stub: "ledger_pb2_grpc.LedgerServiceAsyncStub",
    reconciliation_id: str,
    token: str,
    *,
    page_size: int = PAGE,
    status: "pb.ReconciliationRowStatus.ValueType | None" = None,
) -> list[pb.ReconciliationRow]:
    rows: list[pb.ReconciliationRow] = []
    while token:
        request = pb.ListReconciliationRowsRequest(
            id=reconciliation_id, page_size=page_size, page_token=token
        )
        if status is not None:
            request.status = status
        page = await stub.ListReconciliationRows(request)
        assert len(page.rows) == page_size or not page.next_page_token
        rows.extend(page.rows)
        token = page.next_page_token
    return rows


async def test_a_busy_days_run_is_read_whole_through_its_pages(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    recon_id = await busy_run(core_engine, clock)
    async with ledger_stub(LedgerService(core_engine, clock)) as stub:
        got = await stub.GetReconciliation(pb.GetReconciliationRequest(id=recon_id))
        rest = await every_page(stub, recon_id, got.next_page_token)
    shown = got.reconciliation
    assert (shown.matched_count, shown.amount_mismatch_count, shown.missing_in_ledger_count) == (
        MATCHED,
        AMOUNT_MISMATCHES,
        MISSING_IN_LEDGER,
    )
    assert len(shown.rows) == PAGE
    assert shown.rows_left_out == EVERY_ROW - PAGE
    # What an operator acts on comes first, in the order the run stored it.
    differing = AMOUNT_MISMATCHES + MISSING_IN_LEDGER
    assert [row.status for row in shown.rows[:differing]] == [
        pb.RECONCILIATION_ROW_STATUS_AMOUNT_MISMATCH
    ] * AMOUNT_MISMATCHES + [pb.RECONCILIATION_ROW_STATUS_MISSING_IN_LEDGER] * MISSING_IN_LEDGER
    assert shown.rows[0].differences[0].acquirer == "12000"
    every = list(shown.rows) + rest
    assert len(every) == EVERY_ROW
    assert len({row.reference for row in every}) == EVERY_ROW
    matched = [row.reference for row in every[differing:]]
    assert matched == sorted(matched)
    assert {row.status for row in every[differing:]} == {pb.RECONCILIATION_ROW_STATUS_MATCHED}


async def test_the_rows_of_one_status_are_paged_on_their_own(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    recon_id = await busy_run(core_engine, clock)
    async with ledger_stub(LedgerService(core_engine, clock)) as stub:
        mismatches = await stub.ListReconciliationRows(
            pb.ListReconciliationRowsRequest(
                id=recon_id, status=pb.RECONCILIATION_ROW_STATUS_AMOUNT_MISMATCH
            )
        )
        first = await stub.ListReconciliationRows(
            pb.ListReconciliationRowsRequest(
                id=recon_id, status=pb.RECONCILIATION_ROW_STATUS_MISSING_IN_LEDGER, page_size=1
            )
        )
        second = await every_page(
            stub,
            recon_id,
            first.next_page_token,
            page_size=1,
            status=pb.RECONCILIATION_ROW_STATUS_MISSING_IN_LEDGER,
        )
        capped = await stub.ListReconciliationRows(
            pb.ListReconciliationRowsRequest(id=recon_id, page_size=50_000)
        )
        by_default = await stub.ListReconciliationRows(
            pb.ListReconciliationRowsRequest(id=recon_id)
        )
    assert len(mismatches.rows) == AMOUNT_MISMATCHES
    assert not mismatches.next_page_token
    missing = [first.rows[0].reference] + [row.reference for row in second]
    assert len(missing) == len(set(missing)) == MISSING_IN_LEDGER
    assert len(capped.rows) == PAGE
    assert len(by_default.rows) == 500


def _token(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


async def test_a_page_token_of_another_listing_or_none_at_all_is_refused(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    recon_id = await busy_run(core_engine, clock)
    async with core_engine.begin() as db:
        other = await reconcile.store(
            db, day=DAY - timedelta(days=1), account_id=None, rows=[], now=clock.now()
        )
    async with ledger_stub(LedgerService(core_engine, clock)) as stub:
        got = await stub.GetReconciliation(pb.GetReconciliationRequest(id=recon_id))
        token = got.next_page_token
        made_for_matched = (
            await stub.ListReconciliationRows(
                pb.ListReconciliationRowsRequest(
                    id=recon_id, status=pb.RECONCILIATION_ROW_STATUS_MATCHED, page_size=1
                )
            )
        ).next_page_token
        refused = [
            pb.ListReconciliationRowsRequest(id=recon_id, page_token="not a token"),
            pb.ListReconciliationRowsRequest(id=recon_id, page_token=token[:-4]),
            pb.ListReconciliationRowsRequest(id=other.id, page_token=token),
            pb.ListReconciliationRowsRequest(
                id=recon_id,
                page_token=token,
                status=pb.RECONCILIATION_ROW_STATUS_MATCHED,
            ),
            pb.ListReconciliationRowsRequest(id=recon_id, page_token=made_for_matched),
            pb.ListReconciliationRowsRequest(
                id=recon_id,
                page_token=_token(
                    {"reconciliation_id": recon_id, "status": "", "matched": True, "row_id": "1"}
                ),
            ),
            pb.ListReconciliationRowsRequest(
                id=recon_id,
                page_token=_token(
                    {"reconciliation_id": recon_id, "status": "", "matched": 1, "row_id": 1}
                ),
            ),
            pb.ListReconciliationRowsRequest(id=recon_id, page_token=_token([recon_id])),
            pb.ListReconciliationRowsRequest(id=recon_id, page_size=-1),
            pb.ListReconciliationRowsRequest(id=recon_id, status=99),  # type: ignore[arg-type]
        ]
        for request in refused:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.ListReconciliationRows(request)
            assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT, request
        for call in (
            stub.GetReconciliation(pb.GetReconciliationRequest(id="recon_unknown")),
            stub.ListReconciliationRows(pb.ListReconciliationRowsRequest(id="recon_unknown")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call
            assert failed.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_small_run_reaches_its_caller_whole_as_before(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    clock.advance(timedelta(days=1).total_seconds())
    fake = FakeAcquirer(
        [settlement_row("capture", f"ch_unknown_{n}", 1_000, account_id) for n in range(3)]
    )
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            async with ledger_stub(service) as stub:
                ran = await stub.Reconcile(pb.ReconcileRequest(date=DAY.isoformat()))
                got = await stub.GetReconciliation(
                    pb.GetReconciliationRequest(id=ran.reconciliation.id)
                )
    for answer in (ran, got):
        assert answer.reconciliation.missing_in_ledger_count == 3
        assert [row.reference for row in answer.reconciliation.rows] == [
            f"ch_unknown_{n}" for n in range(3)
        ]
        assert answer.reconciliation.rows_left_out == 0
        assert answer.next_page_token == ""


async def test_reconcile_answers_its_first_page_and_a_token_for_the_rest(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    clock.advance(timedelta(days=1).total_seconds())
    settled = PAGE + 100
    fake = FakeAcquirer(
        [settlement_row("capture", f"ch_{n:05}", 1_000, account_id) for n in range(settled)]
    )
    with serving(fake) as port:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            service = LedgerService(
                core_engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
            )
            async with ledger_stub(service) as stub:
                ran = await stub.Reconcile(pb.ReconcileRequest(date=DAY.isoformat()))
                rest = await every_page(stub, ran.reconciliation.id, ran.next_page_token)
    assert ran.reconciliation.missing_in_ledger_count == settled
    assert len(ran.reconciliation.rows) == PAGE
    assert ran.reconciliation.rows_left_out == len(rest) == 100
    references = [row.reference for row in list(ran.reconciliation.rows) + rest]
    assert len(set(references)) == settled


async def test_a_page_of_a_busy_run_reads_its_own_rows_by_the_index(
    core_engine: AsyncEngine, clock: FixedClock
) -> None:
    """Not every row of the run, sorted, for each page (core migration 0082)."""
    recon_id = await busy_run(core_engine, clock)
    async with core_engine.connect() as db:
        await db.execute(text("ANALYZE reconciliation_rows"))
        await db.commit()
    after = RowCursor(matched=True, row_id=(await _row_id(core_engine, recon_id, MATCHED // 2)))
    for status in (None, reconcile.RowStatus.MATCHED):
        query = page_query(recon_id, status=status, after=after, limit=PAGE)
        sql = str(query.compile(core_engine.sync_engine, compile_kwargs={"literal_binds": True}))
        async with core_engine.connect() as db:
            plan = "\n".join(
                (await db.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}"))
                .scalars()
                .all()
            )
        assert "ix_reconciliation_rows_page_order" in plan, plan
        assert "Sort" not in plan, plan


async def _row_id(engine: AsyncEngine, recon_id: str, nth: int) -> int:
    async with engine.connect() as db:
        found = await db.execute(
            text(
                "SELECT id FROM reconciliation_rows WHERE reconciliation_id = :id"
                " ORDER BY id OFFSET :nth LIMIT 1"
            ),
            {"id": recon_id, "nth": nth},
        )
        return int(found.scalar_one())
