"""The ledger's announcements (balance.available, payout.*), in the caller's transaction.

Each one becomes a Stripe event through the webhooks outbox (`remit.webhooks.outbox`) and is
also kept in the ledger's own `ledger_events` log, stamped as handed over, so an event exists
if and only if the change that caused it committed.
"""

from datetime import datetime
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.jsonview import to_json
from remit.ledger.balance_repository import BalanceRepository
from remit.payments.requests import current_request
from remit.versioning.previous_attributes import changed_attributes
from remit.webhooks.outbox import record_event as record_webhook_event

BALANCE_AVAILABLE: Final = "balance.available"
PAYOUT_CREATED: Final = "payout.created"
PAYOUT_UPDATED: Final = "payout.updated"
PAYOUT_PAID: Final = "payout.paid"
PAYOUT_FAILED: Final = "payout.failed"
PAYOUT_CANCELED: Final = "payout.canceled"


async def record_event(
    db: AsyncConnection,
    *,
    account_id: str,
    type: str,
    message: Message,
    object_id: str | None,
    now: datetime,
    before: Message | None = None,
) -> None:
    """Record the event of the object `message` renders. `before`: the object before the change,
    for `previous_attributes` (a `payout.updated`). The request it is for, if any, is the one
    the gRPC handler noted (`remit.payments.requests`): none for the worker's own changes (a
    payout moving on at the bank, funds becoming available), as Stripe's automatic changes
    name none."""
    data = to_json(message)
    previous = None if before is None else changed_attributes(to_json(before), data)
    request = current_request.get()
    await record_webhook_event(
        db,
        account_id=account_id,
        type=type,
        data_object=data,
        now=now,
        previous_attributes=previous or None,
        request_id=None if request is None else request.request_id,
        idempotency_key=None if request is None else request.idempotency_key,
    )
    await BalanceRepository(db).insert_event(
        account_id=account_id, type=type, object_id=object_id, data=data, now=now
    )
