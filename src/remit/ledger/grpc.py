"""LedgerService over gRPC: protobuf in, use case, protobuf out. Nothing else."""

from typing import Any

import grpc

from remit.core.errors import invalid
from remit.core.jsonview import enum_wire_values
from remit.core.metadata import requested_metadata
from remit.grpcutil.metadata import call_context
from remit.grpcutil.protoconv import filter_bound, timestamp
from remit.grpcutil.server import ServiceRegistration
from remit.ledger.balance_repository import TimeRange
from remit.ledger.domain import Posting, TransactionRequest
from remit.ledger.messages import (
    balance_message,
    balance_transaction_message,
    ledger_account_message,
    ledger_transaction_message,
    payout_message,
)
from remit.ledger.objects import (
    BalanceTransactionType,
    NewPayout,
    Payout,
    PayoutMethod,
    PayoutStatus,
)
from remit.ledger.reconcile import Reconciliation, ReconciliationRow, RowStatus
from remit.ledger.reconciliation_pages import (
    FIRST_PAGE_SIZE,
    RowsPage,
    cursor_from_token,
    page_limit,
    page_token,
)
from remit.ledger.reconciliation_runs import DEFAULT_LIST_LIMIT, ReconciliationRun, run_of
from remit.ledger.service import LedgerService
from remit.ledger.verify import VerifyReport
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.payments.requests import note_call
from remit_api.common.v1 import common_pb2
from remit_api.ledger.v1 import ledger_pb2 as pb
from remit_api.ledger.v1 import ledger_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

_BT_TYPES = enum_wire_values(pb.BalanceTransactionType.DESCRIPTOR)
_PAYOUT_STATUSES = enum_wire_values(pb.PayoutStatus.DESCRIPTOR)
_PAYOUT_METHODS = enum_wire_values(pb.PayoutMethod.DESCRIPTOR)
_SOURCE_TYPES = enum_wire_values(pb.PayoutSourceType.DESCRIPTOR)
_DIFFERENCE_KINDS = {
    "unbalanced_transaction": pb.LEDGER_DIFFERENCE_KIND_UNBALANCED_TRANSACTION,
    "balance_mismatch": pb.LEDGER_DIFFERENCE_KIND_BALANCE_MISMATCH,
    "balance_transaction_mismatch": pb.LEDGER_DIFFERENCE_KIND_BALANCE_TRANSACTION_MISMATCH,
    "pending_outcome_mismatch": pb.LEDGER_DIFFERENCE_KIND_PENDING_OUTCOME_MISMATCH,
    "reversal_mismatch": pb.LEDGER_DIFFERENCE_KIND_REVERSAL_MISMATCH,
    "account_flag_mismatch": pb.LEDGER_DIFFERENCE_KIND_ACCOUNT_FLAG_MISMATCH,
    "refunds_exceed_charge": pb.LEDGER_DIFFERENCE_KIND_REFUNDS_EXCEED_CHARGE,
    "missing_balance_transaction": pb.LEDGER_DIFFERENCE_KIND_MISSING_BALANCE_TRANSACTION,
    "payout_mismatch": pb.LEDGER_DIFFERENCE_KIND_PAYOUT_MISMATCH,
    "foreign_ledger_account": pb.LEDGER_DIFFERENCE_KIND_FOREIGN_LEDGER_ACCOUNT,
}
_ROW_STATUS = {
    RowStatus.MATCHED: pb.RECONCILIATION_ROW_STATUS_MATCHED,
    RowStatus.MISSING_IN_LEDGER: pb.RECONCILIATION_ROW_STATUS_MISSING_IN_LEDGER,
    RowStatus.MISSING_AT_ACQUIRER: pb.RECONCILIATION_ROW_STATUS_MISSING_AT_ACQUIRER,
    RowStatus.AMOUNT_MISMATCH: pb.RECONCILIATION_ROW_STATUS_AMOUNT_MISMATCH,
    RowStatus.FEE_MISMATCH: pb.RECONCILIATION_ROW_STATUS_FEE_MISMATCH,
    RowStatus.OUTCOME_MISMATCH: pb.RECONCILIATION_ROW_STATUS_OUTCOME_MISMATCH,
}
_ROW_STATUS_OF = {wire: status for status, wire in _ROW_STATUS.items()}
_ROW_KIND = {
    "capture": pb.RECONCILIATION_ROW_KIND_CAPTURE,
    "refund": pb.RECONCILIATION_ROW_KIND_REFUND,
}


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _postings(messages: Any) -> tuple[Posting, ...]:
    return tuple(Posting(m.ledger_account, m.amount_minor, m.currency.lower()) for m in messages)


def time_range(message: common_pb2.CreatedFilter, param: str = "created") -> TimeRange:
    return TimeRange(
        gt=filter_bound(message, "gt", param),
        gte=filter_bound(message, "gte", param),
        lt=filter_bound(message, "lt", param),
        lte=filter_bound(message, "lte", param),
    )


def _limit(value: int) -> int:
    return value or 10


def verify_message(report: VerifyReport) -> pb.VerifyLedgerResponse:
    response = pb.VerifyLedgerResponse(
        ok=report.ok,
        transactions_checked=report.transactions_checked,
        verified_at=timestamp(report.verified_at),
    )
    for difference in report.differences:
        item = response.differences.add(
            kind=_DIFFERENCE_KINDS[difference.kind.value],
            account_id=difference.account_id,
            currency=difference.currency,
            expected_minor=difference.expected_minor,
            actual_minor=difference.actual_minor,
            description=difference.description,
        )
        if difference.transaction_id is not None:
            item.transaction_id = difference.transaction_id
        if difference.ledger_account is not None:
            item.ledger_account = difference.ledger_account
    for chain_break in report.chain_breaks:
        response.chain_breaks.add(
            account_id=chain_break.account_id,
            sequence=chain_break.sequence,
            transaction_id=chain_break.transaction_id,
            expected_hash=chain_break.expected_hash,
            actual_hash=chain_break.actual_hash,
        )
    return response


def run_message(run: ReconciliationRun) -> pb.Reconciliation:
    """A reconciliation without its rows, as ListReconciliations answers it."""
    message = pb.Reconciliation(
        id=run.id,
        date=run.date,
        created=timestamp(run.finished_at),
        matched_count=run.counts[RowStatus.MATCHED],
        missing_in_ledger_count=run.counts[RowStatus.MISSING_IN_LEDGER],
        missing_at_acquirer_count=run.counts[RowStatus.MISSING_AT_ACQUIRER],
        amount_mismatch_count=run.counts[RowStatus.AMOUNT_MISMATCH],
        fee_mismatch_count=run.counts[RowStatus.FEE_MISMATCH],
        outcome_mismatch_count=run.counts[RowStatus.OUTCOME_MISMATCH],
        partial=run.partial,
    )
    if run.started_at is not None:
        message.started.CopyFrom(timestamp(run.started_at))
    if run.account_id is not None:
        message.account_id = run.account_id
    if run.superseded_by is not None:
        message.superseded_by = run.superseded_by
    return message


def reconciliation_row_message(row: ReconciliationRow) -> pb.ReconciliationRow:
    item = pb.ReconciliationRow(
        status=_ROW_STATUS[row.status],
        reference=row.reference,
        authorization_id=row.authorization_id,
        kind=_ROW_KIND[row.kind.value],
        account_id=row.account_id,
        currency=row.currency,
    )
    optional = (
        "ledger_amount",
        "acquirer_amount",
        "ledger_transaction_id",
        "acquirer_fee",
        "ledger_fee",
    )
    for name in optional:
        value = getattr(row, name)
        if value is not None:
            setattr(item, name, value)
    for difference in row.differences:
        item.differences.add(
            field=difference.field, ledger=difference.ledger, acquirer=difference.acquirer
        )
    return item


def reconciliation_message(result: Reconciliation) -> pb.Reconciliation:
    """A run with every one of its rows, as computed in-process; over gRPC a run is answered
    with its first page only (`first_page_message`)."""
    message = run_message(run_of(result))
    message.rows.extend(reconciliation_row_message(row) for row in result.rows)
    return message


def first_page_message(run: ReconciliationRun, page: RowsPage) -> tuple[pb.Reconciliation, str]:
    """The run with its first page of rows, as Reconcile and GetReconciliation answer it, and
    the page token of the rows after them (empty when the page holds them all)."""
    message = run_message(run)
    message.rows.extend(reconciliation_row_message(row) for row in page.rows)
    message.rows_left_out = max(0, sum(run.counts.values()) - len(page.rows))
    token = "" if page.next is None else page_token(page.next, run.id, None)
    return message, token


class LedgerServicer(ledger_pb2_grpc.LedgerServiceServicer):
    def __init__(self, service: LedgerService) -> None:
        self._service = service

    async def PostTransaction(
        self, request: pb.PostTransactionRequest, context: Context
    ) -> pb.PostTransactionResponse:
        call = call_context(context)
        result = await self._service.post_transaction(
            call.account_id,
            TransactionRequest(
                transaction_id=request.transaction_id,
                postings=_postings(request.postings),
                pending=request.pending,
                metadata=dict(request.metadata),
                description=_optional(request, "description"),
            ),
        )
        return pb.PostTransactionResponse(
            transaction=ledger_transaction_message(result.transaction), replayed=result.replayed
        )

    async def PostPendingTransaction(
        self, request: pb.PostPendingTransactionRequest, context: Context
    ) -> pb.PostPendingTransactionResponse:
        call = call_context(context)
        result = await self._service.post_pending(
            call.account_id,
            pending_transaction_id=request.pending_transaction_id,
            transaction_id=request.transaction_id,
            postings=_postings(request.postings),
            metadata=dict(request.metadata),
        )
        return pb.PostPendingTransactionResponse(
            transaction=ledger_transaction_message(result.transaction), replayed=result.replayed
        )

    async def VoidPendingTransaction(
        self, request: pb.VoidPendingTransactionRequest, context: Context
    ) -> pb.VoidPendingTransactionResponse:
        call = call_context(context)
        result = await self._service.void_pending(
            call.account_id,
            pending_transaction_id=request.pending_transaction_id,
            transaction_id=request.transaction_id,
            metadata=dict(request.metadata),
        )
        return pb.VoidPendingTransactionResponse(
            transaction=ledger_transaction_message(result.transaction), replayed=result.replayed
        )

    async def GetTransaction(
        self, request: pb.GetTransactionRequest, context: Context
    ) -> pb.GetTransactionResponse:
        call = call_context(context)
        found = await self._service.get_transaction(call.account_id, request.id)
        return pb.GetTransactionResponse(transaction=ledger_transaction_message(found))

    async def ListLedgerAccountBalances(
        self, request: pb.ListLedgerAccountBalancesRequest, context: Context
    ) -> pb.ListLedgerAccountBalancesResponse:
        call = call_context(context)
        found, has_more = await self._service.list_ledger_accounts(
            call.account_id,
            limit=_limit(request.limit),
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            name_prefix=_optional(request, "name_prefix"),
            currency=_optional(request, "currency"),
        )
        return pb.ListLedgerAccountBalancesResponse(
            data=[ledger_account_message(a) for a in found], has_more=has_more
        )

    async def GetLedgerAccount(
        self, request: pb.GetLedgerAccountRequest, context: Context
    ) -> pb.GetLedgerAccountResponse:
        call = call_context(context)
        found = await self._service.get_ledger_account(
            call.account_id, request.name, request.currency.lower()
        )
        return pb.GetLedgerAccountResponse(ledger_account=ledger_account_message(found))

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: Context
    ) -> pb.GetBalanceResponse:
        call = call_context(context)
        balance = await self._service.get_balance(call.account_id)
        return pb.GetBalanceResponse(balance=balance_message(balance))

    async def GetBalanceTransaction(
        self, request: pb.GetBalanceTransactionRequest, context: Context
    ) -> pb.GetBalanceTransactionResponse:
        call = call_context(context)
        found = await self._service.get_balance_transaction(call.account_id, request.id)
        return pb.GetBalanceTransactionResponse(
            balance_transaction=balance_transaction_message(found)
        )

    async def ListBalanceTransactions(
        self, request: pb.ListBalanceTransactionsRequest, context: Context
    ) -> pb.ListBalanceTransactionsResponse:
        call = call_context(context)
        txn_type = None
        if request.HasField("type"):
            wire = _BT_TYPES.get(request.type)
            if wire is None:
                raise invalid("type must be a balance transaction type.", "type")
            known = {t.value: t for t in BalanceTransactionType}
            if wire not in known:
                # A type remit never produces: nothing can match.
                return pb.ListBalanceTransactionsResponse(has_more=False)
            txn_type = known[wire]
        found, has_more = await self._service.list_balance_transactions(
            call.account_id,
            limit=_limit(request.limit),
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=time_range(request.created),
            payout_id=_optional(request, "payout"),
            source_id=_optional(request, "source"),
            type=txn_type,
            currency=_optional(request, "currency"),
        )
        return pb.ListBalanceTransactionsResponse(
            data=[balance_transaction_message(t) for t in found], has_more=has_more
        )

    async def CreatePayout(
        self, request: pb.CreatePayoutRequest, context: Context
    ) -> pb.CreatePayoutResponse:
        method = PayoutMethod.STANDARD
        if request.HasField("method"):
            wire = _PAYOUT_METHODS.get(request.method)
            if wire is None:
                raise invalid("method must be standard or instant.", "method")
            method = PayoutMethod(wire)
        source_type = "card"
        if request.HasField("source_type"):
            wire = _SOURCE_TYPES.get(request.source_type)
            if wire is None:
                raise invalid("source_type must be bank_account, card or fpx.", "source_type")
            source_type = wire
        new = NewPayout(
            amount=request.amount,
            currency=request.currency.lower(),
            description=_optional(request, "description"),
            method=method,
            statement_descriptor=_optional(request, "statement_descriptor"),
            metadata=requested_metadata(request.metadata),
            destination=_optional(request, "destination"),
            source_type=source_type,
        )

        def answer(payout: Payout) -> pb.CreatePayoutResponse:
            return pb.CreatePayoutResponse(payout=payout_message(payout))

        call = call_context(context)
        note_call(call.request_id, call.idempotency_key)  # payout.created names it
        result = await self._service.create_payout_once(
            call.account_id,
            client_keyed(
                context,
                "CreatePayout",
                request,
                serialized(answer),
            ),
            new,
        )
        return await reply(result, pb.CreatePayoutResponse, answer, context)

    async def GetPayout(
        self, request: pb.GetPayoutRequest, context: Context
    ) -> pb.GetPayoutResponse:
        call = call_context(context)
        payout = await self._service.get_payout(call.account_id, request.id)
        return pb.GetPayoutResponse(payout=payout_message(payout))

    async def ListPayouts(
        self, request: pb.ListPayoutsRequest, context: Context
    ) -> pb.ListPayoutsResponse:
        call = call_context(context)
        status = None
        if request.HasField("status"):
            wire = _PAYOUT_STATUSES.get(request.status)
            if wire is None:
                raise invalid("status must be a payout status.", "status")
            status = PayoutStatus(wire)
        found, has_more = await self._service.list_payouts(
            call.account_id,
            limit=_limit(request.limit),
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=time_range(request.created),
            arrival_date=time_range(request.arrival_date, "arrival_date"),
            status=status,
            destination=_optional(request, "destination"),
        )
        return pb.ListPayoutsResponse(data=[payout_message(p) for p in found], has_more=has_more)

    async def CancelPayout(
        self, request: pb.CancelPayoutRequest, context: Context
    ) -> pb.CancelPayoutResponse:
        call = call_context(context)

        def answer(payout: Payout) -> pb.CancelPayoutResponse:
            return pb.CancelPayoutResponse(payout=payout_message(payout))

        note_call(call.request_id, call.idempotency_key)  # payout.canceled names it

        result = await self._service.cancel_payout(
            call.account_id,
            request.id,
            client_keyed(context, "CancelPayout", request, serialized(answer)),
        )
        return await reply(result, pb.CancelPayoutResponse, answer, context)

    async def UpdatePayout(
        self, request: pb.UpdatePayoutRequest, context: Context
    ) -> pb.UpdatePayoutResponse:
        call = call_context(context)

        def answer(payout: Payout) -> pb.UpdatePayoutResponse:
            return pb.UpdatePayoutResponse(payout=payout_message(payout))

        note_call(call.request_id, call.idempotency_key)  # payout.updated names it

        result = await self._service.update_payout(
            call.account_id,
            request.id,
            set_keys=requested_metadata(request.metadata),
            unset_keys=list(request.unset_metadata_keys),
            clear=request.clear_metadata,
            keyed=client_keyed(context, "UpdatePayout", request, serialized(answer)),
        )
        return await reply(result, pb.UpdatePayoutResponse, answer, context)

    # Platform-wide: not scoped to the account in metadata (an optional filter instead).

    async def VerifyLedger(
        self, request: pb.VerifyLedgerRequest, context: Context
    ) -> pb.VerifyLedgerResponse:
        report = await self._service.verify(_optional(request, "account_id"))
        return verify_message(report)

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: Context
    ) -> pb.ReconcileResponse:
        result = await self._service.reconcile(
            request.date, _optional(request, "account_id"), allow_partial=request.allow_partial
        )
        # Read back from the stored run: its first page, by the ids its rows were stored under,
        # so that the page token continues where the answer stops.
        run, page = await self._service.reconciliation_rows(result.id, limit=FIRST_PAGE_SIZE)
        message, token = first_page_message(run, page)
        return pb.ReconcileResponse(reconciliation=message, next_page_token=token)

    async def GetReconciliation(
        self, request: pb.GetReconciliationRequest, context: Context
    ) -> pb.GetReconciliationResponse:
        run, page = await self._service.reconciliation_rows(request.id, limit=FIRST_PAGE_SIZE)
        message, token = first_page_message(run, page)
        return pb.GetReconciliationResponse(reconciliation=message, next_page_token=token)

    async def ListReconciliationRows(
        self, request: pb.ListReconciliationRowsRequest, context: Context
    ) -> pb.ListReconciliationRowsResponse:
        status = _ROW_STATUS_OF.get(request.status) if request.HasField("status") else None
        if request.HasField("status") and status is None:
            raise invalid("status is not a reconciliation row status.", "status")
        after = cursor_from_token(request.page_token, request.id, status)
        run, page = await self._service.reconciliation_rows(
            request.id, status=status, after=after, limit=page_limit(request.page_size)
        )
        return pb.ListReconciliationRowsResponse(
            rows=[reconciliation_row_message(row) for row in page.rows],
            next_page_token="" if page.next is None else page_token(page.next, run.id, status),
        )

    async def ListReconciliations(
        self, request: pb.ListReconciliationsRequest, context: Context
    ) -> pb.ListReconciliationsResponse:
        runs, has_more = await self._service.list_reconciliations(
            request.limit or DEFAULT_LIST_LIMIT
        )
        return pb.ListReconciliationsResponse(
            data=[run_message(run) for run in runs], has_more=has_more
        )


def ledger_registration(service: LedgerService) -> ServiceRegistration:
    servicer = LedgerServicer(service)
    return ServiceRegistration(
        full_name=pb.DESCRIPTOR.services_by_name["LedgerService"].full_name,
        add_to_server=lambda server: ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
            servicer, server
        ),
    )
