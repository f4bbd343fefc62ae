"""PaymentIntent persistence inside the caller's transaction; every query names the account."""

from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.domain import CaptureMethod, ConfirmationMethod, PaymentIntent, Status
from remit.payments.tables import payment_intents


class PaymentIntentRepository(Protocol):
    async def insert(self, intent: PaymentIntent) -> None: ...
    async def get(
        self, account_id: str, intent_id: str, *, for_update: bool = False
    ) -> PaymentIntent | None: ...
    async def save(self, intent: PaymentIntent) -> None: ...


def _values(intent: PaymentIntent) -> dict[str, object]:
    return {
        "amount_minor": intent.amount_minor,
        "currency": intent.currency,
        "status": intent.status.value,
        "capture_method": intent.capture_method.value,
        "confirmation_method": intent.confirmation_method.value,
        "client_secret": intent.client_secret,
        "customer_id": intent.customer_id,
        "payment_method_id": intent.payment_method_id,
        "description": intent.description,
        "receipt_email": intent.receipt_email,
        "statement_descriptor": intent.statement_descriptor,
        "statement_descriptor_suffix": intent.statement_descriptor_suffix,
        "setup_future_usage": intent.setup_future_usage,
        "metadata": dict(intent.metadata),
        "amount_capturable_minor": intent.amount_capturable_minor,
        "amount_received_minor": intent.amount_received_minor,
        "latest_charge_id": intent.latest_charge_id,
        "cancellation_reason": intent.cancellation_reason,
        "canceled_at": intent.canceled_at,
        "last_payment_error": None
        if intent.last_payment_error is None
        else dict(intent.last_payment_error),
        "next_action": None if intent.next_action is None else dict(intent.next_action),
        "updated_at": intent.updated_at,
    }


def intent_from_row(row: Row[tuple[object, ...]]) -> PaymentIntent:
    m = row._mapping
    return PaymentIntent(
        id=m["id"],
        account_id=m["account_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        status=Status(m["status"]),
        capture_method=CaptureMethod(m["capture_method"]),
        confirmation_method=ConfirmationMethod(m["confirmation_method"]),
        client_secret=m["client_secret"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        metadata=m["metadata"],
        customer_id=m["customer_id"],
        payment_method_id=m["payment_method_id"],
        description=m["description"],
        receipt_email=m["receipt_email"],
        statement_descriptor=m["statement_descriptor"],
        statement_descriptor_suffix=m["statement_descriptor_suffix"],
        setup_future_usage=m["setup_future_usage"],
        amount_capturable_minor=m["amount_capturable_minor"],
        amount_received_minor=m["amount_received_minor"],
        latest_charge_id=m["latest_charge_id"],
        cancellation_reason=m["cancellation_reason"],
        canceled_at=m["canceled_at"],
        last_payment_error=m["last_payment_error"],
        next_action=m["next_action"],
    )


class SqlPaymentIntentRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def insert(self, intent: PaymentIntent) -> None:
        await self._db.execute(
            payment_intents.insert().values(
                id=intent.id,
                account_id=intent.account_id,
                created_at=intent.created_at,
                **_values(intent),
            )
        )

    async def get(
        self, account_id: str, intent_id: str, *, for_update: bool = False
    ) -> PaymentIntent | None:
        query = select(payment_intents).where(
            payment_intents.c.account_id == account_id, payment_intents.c.id == intent_id
        )
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else intent_from_row(row)

    async def save(self, intent: PaymentIntent) -> None:
        await self._db.execute(
            payment_intents.update()
            .where(
                payment_intents.c.account_id == intent.account_id,
                payment_intents.c.id == intent.id,
            )
            .values(**_values(intent))
        )

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: tuple[datetime, str] | None = None,
        ending_before: tuple[datetime, str] | None = None,
        created_gte: datetime | None = None,
        created_gt: datetime | None = None,
        created_lte: datetime | None = None,
        created_lt: datetime | None = None,
        customer_id: str | None = None,
    ) -> tuple[list[PaymentIntent], bool]:
        """Newest first; returns the page and whether more lie beyond it in that direction."""
        c = payment_intents.c
        conditions = [c.account_id == account_id]
        if customer_id is not None:
            conditions.append(c.customer_id == customer_id)
        for bound, op in (
            (created_gte, c.created_at.__ge__),
            (created_gt, c.created_at.__gt__),
            (created_lte, c.created_at.__le__),
            (created_lt, c.created_at.__lt__),
        ):
            if bound is not None:
                conditions.append(op(bound))
        query = select(payment_intents)
        if starting_after is not None:
            at, cursor_id = starting_after
            conditions.append(or_(c.created_at < at, and_(c.created_at == at, c.id < cursor_id)))
            query = query.order_by(c.created_at.desc(), c.id.desc())
        elif ending_before is not None:
            at, cursor_id = ending_before
            conditions.append(or_(c.created_at > at, and_(c.created_at == at, c.id > cursor_id)))
            query = query.order_by(c.created_at.asc(), c.id.asc())
        else:
            query = query.order_by(c.created_at.desc(), c.id.desc())
        rows = (await self._db.execute(query.where(*conditions).limit(limit + 1))).all()
        page = [intent_from_row(row) for row in rows[:limit]]
        if ending_before is not None:
            page.reverse()
        return page, len(rows) > limit
