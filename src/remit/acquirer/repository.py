"""Authorizations and operations, read and written inside the caller's transaction."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
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
from remit.storage.fastsql import Statement, TableStatements

# Every authorization runs these; they go straight to the driver (remit.storage.fastsql).
_AUTHORIZATIONS = TableStatements(authorizations, key=("id",))
_OPERATIONS = TableStatements(operations, key=("reference",))
_OPERATION_COLUMNS = [column.name for column in operations.columns]
_INSERT_OPERATION_ONCE = Statement(
    _OPERATIONS.insert(_OPERATION_COLUMNS).sql + " ON CONFLICT (reference) DO NOTHING RETURNING id",
    frozenset({"request", "authorization_result"}),
)


def _authorization_from_row(m: Mapping[Any, Any]) -> Authorization:
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


def _operation_from_row(m: Mapping[Any, Any]) -> Operation:
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
        row = {
            "id": authorization.id,
            "merchant_id": authorization.merchant_id,
            "currency": authorization.currency,
            "authorized_minor": authorization.authorized_minor,
            "captured_minor": authorization.captured_minor,
            "refunded_minor": authorization.refunded_minor,
            "state": authorization.state.value,
            "card_brand": card.brand.value,
            "card_funding": card.funding.value,
            "card_bin": card.bin,
            "card_last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
            "created_at": authorization.created_at,
            "updated_at": authorization.updated_at,
        }
        await _AUTHORIZATIONS.insert(list(row)).run(self._db, row)

    async def lock_authorization(self, authorization_id: str) -> Authorization | None:
        """The authorization, row-locked until the transaction ends: captures, voids and
        refunds of one authorization run one at a time."""
        row = await _AUTHORIZATIONS.select_for_update.first(self._db, {"id": authorization_id})
        return None if row is None else _authorization_from_row(row)

    async def get_authorization(self, authorization_id: str) -> Authorization | None:
        row = await _AUTHORIZATIONS.select.first(self._db, {"id": authorization_id})
        return None if row is None else _authorization_from_row(row)

    async def save_authorization(self, authorization: Authorization) -> None:
        changes = {
            "captured_minor": authorization.captured_minor,
            "refunded_minor": authorization.refunded_minor,
            "state": authorization.state.value,
            "updated_at": authorization.updated_at,
        }
        await _AUTHORIZATIONS.update(list(changes)).run(
            self._db, {**changes, "id": authorization.id}
        )

    async def insert_operation_once(self, operation: Operation) -> bool:
        """Records the operation unless its reference already has one; True when recorded.

        A concurrent transaction inserting the same reference makes this wait for it to end,
        then report False, so exactly one of any number of duplicates is recorded.
        """
        row = {
            "id": operation.id,
            "reference": operation.reference,
            "kind": operation.kind.value,
            "authorization_id": operation.authorization_id,
            "amount_minor": operation.amount_minor,
            "currency": operation.currency,
            "merchant_id": operation.merchant_id,
            "approved": operation.approved,
            "code": operation.code,
            "message": operation.message,
            "request": operation.request,
            "authorization_result": None
            if operation.authorization_result is None
            else operation.authorization_result.to_json(),
            "fee_minor": operation.fee_minor,
            "settled_at": operation.settled_at,
            "created_at": operation.created_at,
        }
        return await _INSERT_OPERATION_ONCE.first(self._db, row) is not None

    async def find_operation(self, reference: str) -> Operation | None:
        row = await _OPERATIONS.select.first(self._db, {"reference": reference})
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
        return [_operation_from_row(row._mapping) for row in rows]
