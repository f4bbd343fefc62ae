"""The acquirer's settlement report for a day, as reconciliation's acquirer side, and what its
look-up by reference says of a ledger item the report does not list (`answer_for`).

It is read a page at a time (`remit.acquirer.settlement_pages`): the whole day in one message
outgrew the client's 4 MB receive limit at about 26,000 rows, and the command failed on
exactly the busy days it matters most on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Final

import grpc

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.ledger.reconcile import AcquirerAnswer, RowKind, SettledItem
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc

# Per page: a page is at most a few megabytes, read from one index.
PAGE_TIMEOUT_S: Final = 60.0
# The acquirer's largest page (`remit.acquirer.settlement_pages.MAX_PAGE_SIZE`).
PAGE_SIZE: Final = 5000

_KINDS: Final = {
    acquirer_pb2.SETTLEMENT_KIND_CAPTURE: RowKind.CAPTURE,
    acquirer_pb2.SETTLEMENT_KIND_REFUND: RowKind.REFUND,
}


def _failed(message: str) -> RemitError:
    return RemitError(message=message, kind=ErrorKind.INTERNAL, error_type="api_error")


def _item(day: str, row: acquirer_pb2.SettlementRow) -> SettledItem:
    kind = _KINDS.get(row.kind)
    if kind is None:
        # It moved money too: skipped, the day could reconcile clean without it.
        raise _failed(
            f"The acquirer's settlement report for {day} has a row of a kind reconciliation "
            f"does not know ({row.kind}, reference {row.reference!r}); nothing was reconciled."
        )
    return SettledItem(
        kind=kind,
        reference=row.reference,
        account_id=row.merchant_id,
        amount=row.amount,
        currency=row.currency.lower(),
        authorization_id=row.authorization_id,
        fee=row.fee,
        released=row.released if row.HasField("released") else None,
    )


@dataclass(frozen=True)
class AcquirerReport:
    items: list[SettledItem]
    # Whether the acquirer said its report is partial: the day not over on its clock, or
    # over too recently for every operation it stamped to have committed.
    partial: bool


async def settled_items(
    acquirer: acquirer_pb2_grpc.AcquirerServiceAsyncStub,
    day: str,
    account_id: str | None,
    *,
    allow_partial: bool = False,
) -> AcquirerReport:
    """Every row of the acquirer's report for `day` (only `account_id`'s when given). The
    acquirer refuses a day not over, as reconciliation does, unless `allow_partial`."""
    items: list[SettledItem] = []
    partial = False
    token = ""
    while True:
        request = acquirer_pb2.GetSettlementReportRequest(
            date=day,
            merchant_id=account_id or "",
            page_size=PAGE_SIZE,
            page_token=token,
            allow_partial=allow_partial,
        )
        try:
            reply = await acquirer.GetSettlementReport(request, timeout=PAGE_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise remit_error_from_rpc_error(error) from None
        items.extend(_item(day, row) for row in reply.rows)
        partial = partial or reply.partial
        if not reply.next_page_token:
            return AcquirerReport(items, partial)
        if reply.next_page_token == token:
            # The same page again and again: the run would never end instead of failing.
            raise _failed(
                f"The acquirer's settlement report for {day} returned the same page twice; "
                "nothing was reconciled."
            )
        token = reply.next_page_token


def answer_for(
    item: SettledItem, operation: acquirer_pb2.Operation | None, account_id: str | None
) -> AcquirerAnswer:
    """What the acquirer's record under `item`'s reference (None: it has none) says of it, for
    a run over `account_id` (None: every account): the day it settled the same kind of
    movement, for a merchant the run covers, or why it did not.

    Only the kind and the scope decide it: they are what that day's run pairs on. Whether the
    movement is the one the ledger recorded (its amount, currency, merchant, authorization) is
    for that day's run to compare, which shows it as a mismatch."""
    if operation is None:
        return AcquirerAnswer(None, "not found")
    if not operation.approved:
        return AcquirerAnswer(None, f"refused ({operation.code})" if operation.code else "refused")
    if not operation.HasField("settled_at"):
        return AcquirerAnswer(None, "not settled")
    # What settles is a capture (an authorization that captured at once among them) or a
    # refund.
    refund = operation.kind == acquirer_pb2.OPERATION_KIND_REFUND
    kind = RowKind.REFUND if refund else RowKind.CAPTURE
    if kind is not item.kind:
        return AcquirerAnswer(None, f"settled a {kind.value} under it")
    if account_id is not None and operation.merchant_id != account_id:
        # That day's run over this account does not list another merchant's row.
        return AcquirerAnswer(None, f"settled for {operation.merchant_id}")
    day = operation.settled_at.ToDatetime(tzinfo=UTC).date()
    return AcquirerAnswer(day, f"settled on {day.isoformat()}")
