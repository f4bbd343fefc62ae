"""Authorizations and operations, read and written inside the caller's transaction."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.acquirer.cards import Brand, Funding
from remit.acquirer.domain import (
    Authorization,
    AuthorizationResult,
    AuthorizationState,
    CardSummary,
    Operation,
    OperationKind,
)
from remit.acquirer.tables import authorizations, operations


def _authorization_from_row(row: Row[Any]) -> Authorization:
    m = row._mapping
    return Authorization(
        id=m["id"],
        merchant_id=m["merchant_id"],
        currency=m["currency"],
        authorized_minor=m["authorized_minor"],
        captured_minor=m["captured_minor"],
        refunded_minor=m["refunded_minor"],
        state=AuthorizationState(m["state"]),
        card=CardSummary(
            brand=Brand(m["card_brand"]),
            funding=Funding(m["card_funding"]),
            bin=m["card_bin"],
            last4=m["card_last4"],
            exp_month=m["exp_month"],
            exp_year=m["exp_year"],
        ),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _operation_from_row(row: Row[Any]) -> Operation:
    m = row._mapping
    result = m["authorization_result"]
    return Operation(
        id=m["id"],
        reference=m["reference"],
        kind=OperationKind(m["kind"]),
        authorization_id=m["authorization_id"],
        amount_minor=m["amount_minor"],
        currency=m["currency"],
        merchant_id=m["merchant_id"],
        approved=m["approved"],
        code=m["code"],
        message=m["message"],
        created_at=m["created_at"],
        request=m["request"],
        authorization_result=None if result is None else AuthorizationResult.from_json(result),
        fee_minor=m["fee_minor"],
        settled_at=m["settled_at"],
    )


class SqlAcquirerRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def insert_authorization(self, authorization: Authorization) -> None:
        card = authorization.card
        await self._db.execute(
            authorizations.insert().values(
                id=authorization.id,
                merchant_id=authorization.merchant_id,
                currency=authorization.currency,
                authorized_minor=authorization.authorized_minor,
                captured_minor=authorization.captured_minor,
                refunded_minor=authorization.refunded_minor,
                state=authorization.state.value,
                card_brand=card.brand.value,
                card_funding=card.funding.value,
                card_bin=card.bin,
                card_last4=card.last4,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                created_at=authorization.created_at,
                updated_at=authorization.updated_at,
            )
        )

    async def lock_authorization(self, authorization_id: str) -> Authorization | None:
        """The authorization, row-locked until the transaction ends: captures, voids and
        refunds of one authorization run one at a time."""
        row = (
            await self._db.execute(
                select(authorizations)
                .where(authorizations.c.id == authorization_id)
                .with_for_update()
            )
        ).first()
        return None if row is None else _authorization_from_row(row)

    async def get_authorization(self, authorization_id: str) -> Authorization | None:
        row = (
            await self._db.execute(
                select(authorizations).where(authorizations.c.id == authorization_id)
            )
        ).first()
        return None if row is None else _authorization_from_row(row)

    async def save_authorization(self, authorization: Authorization) -> None:
        await self._db.execute(
            authorizations.update()
            .where(authorizations.c.id == authorization.id)
            .values(
                captured_minor=authorization.captured_minor,
                refunded_minor=authorization.refunded_minor,
                state=authorization.state.value,
                updated_at=authorization.updated_at,
            )
        )

    async def insert_operation_once(self, operation: Operation) -> bool:
        """Records the operation unless its reference already has one; True when recorded.

        A concurrent transaction inserting the same reference makes this wait for it to end,
        then report False, so exactly one of any number of duplicates is recorded.
        """
        statement = (
            insert(operations)
            .values(
                id=operation.id,
                reference=operation.reference,
                kind=operation.kind.value,
                authorization_id=operation.authorization_id,
                amount_minor=operation.amount_minor,
                currency=operation.currency,
                merchant_id=operation.merchant_id,
                approved=operation.approved,
                code=operation.code,
                message=operation.message,
                request=operation.request,
                authorization_result=None
                if operation.authorization_result is None
                else operation.authorization_result.to_json(),
                fee_minor=operation.fee_minor,
                settled_at=operation.settled_at,
                created_at=operation.created_at,
            )
            .on_conflict_do_nothing(index_elements=[operations.c.reference])
            .returning(operations.c.id)
        )
        return (await self._db.execute(statement)).first() is not None

    async def find_operation(self, reference: str) -> Operation | None:
        row = (
            await self._db.execute(select(operations).where(operations.c.reference == reference))
        ).first()
        return None if row is None else _operation_from_row(row)

    async def settled_between(
        self, start: datetime, end: datetime, merchant_id: str | None
    ) -> list[Operation]:
        """Operations settled in [start, end), oldest first."""
        c = operations.c
        conditions = [c.settled_at.is_not(None), c.settled_at >= start, c.settled_at < end]
        if merchant_id is not None:
            conditions.append(c.merchant_id == merchant_id)
        rows = await self._db.execute(
            select(operations).where(*conditions).order_by(c.settled_at, c.id)
        )
        return [_operation_from_row(row) for row in rows]
