"""The ledger's announcements (balance.available, payout.*), written to the `ledger_events`
outbox in the caller's transaction.

The webhooks service turns these rows into Stripe events: it reads the unconsumed rows in id
order (`consumed_at IS NULL`), creates its `evt_` for each (`type` is Stripe's event type,
`data` the object at the latest schema, ready to be rendered at each endpoint's version) and
stamps `consumed_at` in the same transaction. An outbox rather than an in-process callback,
because the core and the worker are separate processes and a callback could fire for a change
that then rolled back.
"""

from datetime import datetime
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.jsonview import to_json
from remit.ledger.balance_repository import BalanceRepository

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
) -> None:
    await BalanceRepository(db).insert_event(
        account_id=account_id, type=type, object_id=object_id, data=to_json(message), now=now
    )
