"""3-D Secure challenges: remit's simulated issuer step, one per attempt that needs it.

A challenge's id is its only credential: it appears in the hosted page's URL, which the
cardholder reaches without an API key, so it is long and random (`tdsc_` + 24 base62).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final, NamedTuple

from sqlalchemy import ColumnClause, Select, literal_column, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.radar.tables import three_d_secure_challenges as table

CHALLENGE_LIFETIME: Final = timedelta(hours=1)


class ChallengeStatus(Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


# `pending` written into a statement, not bound: a plan the server prepares once for any status
# (psycopg prepares a statement used often) could not use the partial index of pending
# challenges, `ix_three_d_secure_challenges_pending_expiry`.
_PENDING_LITERAL: Final[ColumnClause[str]] = literal_column(f"'{ChallengeStatus.PENDING.value}'")


@dataclass(frozen=True)
class ThreeDSChallenge:
    id: str
    account_id: str
    payment_intent_id: str
    charge_id: str
    amount_minor: int
    currency: str
    brand: str
    last4: str
    status: ChallengeStatus
    created_at: datetime
    expires_at: datetime
    return_url: str | None = None
    completed_at: datetime | None = None

    def expired_at(self, now: datetime) -> bool:
        return now >= self.expires_at


class ExpiredChallenge(NamedTuple):
    """A challenge still pending at its expiry, for the sweep that ends such challenges."""

    account_id: str
    id: str
    expires_at: datetime


def expired_pending_query(
    now: datetime, *, limit: int, after: tuple[datetime, str] | None = None
) -> Select[tuple[str, str, datetime]]:
    """The pending challenges expired by `now`, soonest first (then by id), and only past
    `after` in that order when given, read through the partial index of pending challenges:
    never the ended ones, which are nearly all of them."""
    c = table.c
    past = [] if after is None else [tuple_(c.expires_at, c.id) > tuple_(*after)]
    return (
        select(c.account_id, c.id, c.expires_at)
        .where(c.status == _PENDING_LITERAL, c.expires_at <= now, *past)
        .order_by(c.expires_at, c.id)
        .limit(limit)
    )


def _from_row(row: Row[tuple[object, ...]]) -> ThreeDSChallenge:
    m = row._mapping
    return ThreeDSChallenge(
        id=m["id"],
        account_id=m["account_id"],
        payment_intent_id=m["payment_intent_id"],
        charge_id=m["charge_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        brand=m["brand"],
        last4=m["last4"],
        status=ChallengeStatus(m["status"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        return_url=m["return_url"],
        completed_at=m["completed_at"],
    )


class ChallengeRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def insert(self, challenge: ThreeDSChallenge) -> None:
        await self._db.execute(
            table.insert().values(
                id=challenge.id,
                account_id=challenge.account_id,
                payment_intent_id=challenge.payment_intent_id,
                charge_id=challenge.charge_id,
                amount_minor=challenge.amount_minor,
                currency=challenge.currency,
                brand=challenge.brand,
                last4=challenge.last4,
                status=challenge.status.value,
                return_url=challenge.return_url,
                created_at=challenge.created_at,
                expires_at=challenge.expires_at,
                completed_at=challenge.completed_at,
            )
        )

    async def get(
        self, account_id: str, challenge_id: str, *, for_update: bool = False
    ) -> ThreeDSChallenge | None:
        query = select(table).where(table.c.account_id == account_id, table.c.id == challenge_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._db.execute(query)).first()
        return None if row is None else _from_row(row)

    async def expired_pending(
        self, now: datetime, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[ExpiredChallenge]:
        """Up to `limit` challenges still pending at their expiry, soonest expired first, past
        `after` when given: what the sweep of unanswered challenges ends."""
        rows = await self._db.execute(expired_pending_query(now, limit=limit, after=after))
        return [ExpiredChallenge(row.account_id, row.id, row.expires_at) for row in rows]

    async def save(self, challenge: ThreeDSChallenge) -> None:
        await self._db.execute(
            update(table)
            .where(table.c.id == challenge.id)
            .values(status=challenge.status.value, completed_at=challenge.completed_at)
        )
