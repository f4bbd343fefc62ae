"""Reviews: payments a `review` rule let through for a person to look at.

A review opens in the transaction that authorizes its charge. Approving it closes it and lets a
manually captured payment be captured; refusing it refunds the charge (or cancels the uncaptured
PaymentIntent) through the payments service under an idempotency key of the review's own, then
closes it. A payment that ends otherwise closes its open review in the transaction that ends
it (`Radar.payment_ended`): refunded in full by refunds that all succeeded, none still pending
(`refunded`, or `refunded_as_fraud` when one had reason `fraudulent`), its intent canceled
(`canceled`), or its authorization expired (`payment_never_settled`). `review.opened` and
`review.closed` are recorded in the same transactions.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from sqlalchemy import select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.radar.tables import radar_reviews as table
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, fetch_page


class ClosedReason(Enum):
    APPROVED = "approved"
    REFUNDED = "refunded"
    REFUNDED_AS_FRAUD = "refunded_as_fraud"
    CANCELED = "canceled"
    # Its authorization expired uncaptured.
    PAYMENT_NEVER_SETTLED = "payment_never_settled"


@dataclass(frozen=True)
class Review:
    id: str
    account_id: str
    charge_id: str
    payment_intent_id: str
    open: bool
    opened_reason: str
    created_at: datetime
    risk: Mapping[str, object] = field(default_factory=dict)
    rule_id: str | None = None
    closed_reason: ClosedReason | None = None
    ip_address: str | None = None
    ip_country: str | None = None
    closed_at: datetime | None = None
    # While a close refunds or cancels the payment (`ReviewsService`): the reason it will
    # close with. Not shown on the review.
    closing_reason: ClosedReason | None = None

    @property
    def reason(self) -> str:
        """Stripe's `reason`: why it opened while open, why it closed after."""
        return self.opened_reason if self.closed_reason is None else self.closed_reason.value

    def closed(self, reason: ClosedReason, at: datetime) -> "Review":
        return replace(self, open=False, closed_reason=reason, closed_at=at, closing_reason=None)


def _from_row(row: Row[tuple[object, ...]]) -> Review:
    m = row._mapping
    return Review(
        id=m["id"],
        account_id=m["account_id"],
        charge_id=m["charge_id"],
        payment_intent_id=m["payment_intent_id"],
        open=m["open"],
        opened_reason=m["opened_reason"],
        created_at=m["created_at"],
        risk=m["risk"],
        rule_id=m["rule_id"],
        closed_reason=None if m["closed_reason"] is None else ClosedReason(m["closed_reason"]),
        ip_address=m["ip_address"],
        ip_country=m["ip_country"],
        closed_at=m["closed_at"],
        closing_reason=None if m["closing_reason"] is None else ClosedReason(m["closing_reason"]),
    )


class ReviewRepository:
    table = table

    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def insert(self, review: Review) -> None:
        await self._db.execute(
            table.insert().values(
                id=review.id,
                account_id=review.account_id,
                charge_id=review.charge_id,
                payment_intent_id=review.payment_intent_id,
                open=review.open,
                opened_reason=review.opened_reason,
                closed_reason=None,
                rule_id=review.rule_id,
                ip_address=review.ip_address,
                ip_country=review.ip_country,
                risk=dict(review.risk),
                created_at=review.created_at,
                closed_at=None,
            )
        )

    async def get(
        self, account_id: str, review_id: str, *, for_update: bool = False
    ) -> Review | None:
        query = select(table).where(table.c.account_id == account_id, table.c.id == review_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else _from_row(row)

    async def is_open(self, review_id: str) -> bool:
        row = (await self._db.execute(select(table.c.open).where(table.c.id == review_id))).first()
        return bool(row is not None and row[0])

    async def save(self, review: Review) -> None:
        await self._db.execute(
            update(table)
            .where(table.c.id == review.id)
            .values(
                open=review.open,
                closed_reason=None if review.closed_reason is None else review.closed_reason.value,
                closed_at=review.closed_at,
                closing_reason=None
                if review.closing_reason is None
                else review.closing_reason.value,
            )
        )

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None,
        ending_before: Cursor | None,
        created: CreatedBounds = ANY_TIME,
        open_only: bool | None = None,
    ) -> tuple[list[Review], bool]:
        conditions = [table.c.account_id == account_id, *created.conditions(table)]
        if open_only is not None:
            conditions.append(table.c.open == open_only)
        rows, more = await fetch_page(
            self._db,
            table,
            conditions,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_from_row(row) for row in rows], more
