"""Authorizations and operations, read and written inside the caller's transaction."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Text, cast, func, literal, or_, select, tuple_
from sqlalchemy.dialects import postgresql
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
from remit.acquirer.tables import RECORDED_BY, PgSnapshot, authorizations, operations
from remit.storage.fastsql import Db, Statement, TableStatements, sqlalchemy_unit

# Every authorization runs these; they go straight to the driver (remit.storage.fastsql).
_AUTHORIZATIONS = TableStatements(authorizations, key=("id",))
_OPERATIONS = TableStatements(operations, key=("reference",))
# Every column but the one the database sets, the transaction that wrote the row.
_OPERATION_COLUMNS = [column.name for column in operations.columns if column.name != RECORDED_BY]
_OPERATION_JSON = frozenset({"request", "authorization_result"})
_INSERT_OPERATION_ONCE = Statement(
    _OPERATIONS.insert(_OPERATION_COLUMNS).sql + " ON CONFLICT (reference) DO NOTHING RETURNING id",
    _OPERATION_JSON,
)


def _sql_type(table: Table, name: str) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(table.c[name].type.compile(dialect=dialect))


def _record_authorization_sql() -> str:
    """One statement that records an authorize operation unless its reference already has one.

    `recorded` inserts the operation with ON CONFLICT (reference) DO NOTHING; the approved
    authorization is inserted from `recorded`'s own output, so it exists exactly when the
    operation was recorded (a duplicate that loses the race on the unique index leaves no
    authorization behind). The foreign key from the operation to the authorization is checked
    at the end of the statement, when both rows are in. The answer is one row: `recorded`
    (1 or 0) and, when the reference was already taken in the statement's snapshot, the
    recorded operation's columns.
    """
    op_columns = ", ".join(f'"{name}"' for name in _OPERATION_COLUMNS)
    op_values = ", ".join(f"%({name})s" for name in _OPERATION_COLUMNS)
    held = [column.name for column in authorizations.columns if column.name != "id"]
    auth_columns = ", ".join(f'"{name}"' for name in ["id", *held])
    # Parameters in a SELECT list carry no column type of their own: cast each to its column's.
    auth_values = ", ".join(f"%(auth_{name})s::{_sql_type(authorizations, name)}" for name in held)
    # Identifiers and types come from the tables' own metadata, never from a request.
    return (
        f"WITH existing AS (SELECT {op_columns} FROM operations"  # noqa: S608
        " WHERE reference = %(reference)s),"
        f" recorded AS (INSERT INTO operations ({op_columns}) VALUES ({op_values})"
        " ON CONFLICT (reference) DO NOTHING RETURNING authorization_id),"
        f" held AS (INSERT INTO authorizations ({auth_columns})"
        f" SELECT recorded.authorization_id, {auth_values} FROM recorded"
        " WHERE recorded.authorization_id IS NOT NULL)"
        " SELECT (SELECT count(*) FROM recorded) AS recorded, existing.*"
        " FROM (VALUES (1)) AS one LEFT JOIN existing ON true"
    )


_RECORD_AUTHORIZATION = Statement(_record_authorization_sql(), _OPERATION_JSON)
# `setup_off_session` written out, not a parameter, so that the partial index on setups serves
# every plan of the statement.
_AUTHORIZATION_COLUMNS = ", ".join(f'"{column.name}"' for column in authorizations.columns)
_FIND_SETUP = Statement(
    # Identifiers come from the table's own metadata, never from a request.
    f"SELECT {_AUTHORIZATION_COLUMNS} FROM authorizations"  # noqa: S608
    " WHERE setup_off_session AND network_transaction_id = %(network_transaction_id)s LIMIT 1"
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
        network_transaction_id=m["network_transaction_id"],
        three_d_secure_authenticated=m["three_d_secure_authenticated"],
        setup_off_session=m["setup_off_session"],
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
        released_minor=m["released_minor"],
    )


@dataclass(frozen=True)
class AuthorizationRecord:
    """What recording an authorize operation did: recorded it, or found its reference taken
    (`existing` is the operation holding it, when it was visible to the statement)."""

    recorded: bool
    existing: Operation | None


class SqlAcquirerRepository:
    def __init__(self, connection: Db) -> None:
        self._db = connection

    @property
    def _sa(self) -> AsyncConnection:
        return sqlalchemy_unit(self._db)

    async def lock_authorization(self, authorization_id: str) -> Authorization | None:
        """The authorization, row-locked until the transaction ends: captures, voids and
        refunds of one authorization run one at a time."""
        row = await _AUTHORIZATIONS.select_for_update.first(self._db, {"id": authorization_id})
        return None if row is None else _authorization_from_row(row)

    async def get_authorization(self, authorization_id: str) -> Authorization | None:
        row = await _AUTHORIZATIONS.select.first(self._db, {"id": authorization_id})
        return None if row is None else _authorization_from_row(row)

    async def find_setup(self, network_transaction_id: str) -> Authorization | None:
        """The authorization with this network transaction id that set a card up for
        off-session payments, if any."""
        row = await _FIND_SETUP.first(self._db, {"network_transaction_id": network_transaction_id})
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
        return await _INSERT_OPERATION_ONCE.first(self._db, _operation_row(operation)) is not None

    async def record_authorization(
        self, operation: Operation, authorization: Authorization | None
    ) -> "AuthorizationRecord":
        """Records an authorize operation and, when approved, its authorization, in one
        statement, unless the operation's reference already has an operation.

        Meant for an autocommit unit: the statement is its own transaction. A concurrent
        statement inserting the same reference makes this one wait for it to end, then record
        nothing; the winner's operation is then not in this statement's snapshot, so the answer
        carries no existing operation and the caller reads it afterwards.
        """
        assert (authorization is None) == (operation.authorization_id is None)
        assert authorization is None or authorization.id == operation.authorization_id
        params = _operation_row(operation)
        if authorization is None:
            params.update(_NO_AUTHORIZATION)
        else:
            params.update(
                {
                    f"auth_{name}": value
                    for name, value in _authorization_row(authorization).items()
                    if name != "id"
                }
            )
        row = await _RECORD_AUTHORIZATION.first(self._db, params)
        assert row is not None, "the statement always answers one row"
        if row["recorded"]:
            return AuthorizationRecord(recorded=True, existing=None)
        existing = None if row["id"] is None else _operation_from_row(row)
        return AuthorizationRecord(recorded=False, existing=existing)

    async def find_operation(self, reference: str) -> Operation | None:
        row = await _OPERATIONS.select.first(self._db, {"reference": reference})
        return None if row is None else _operation_from_row(row)

    async def current_snapshot(self) -> str:
        """The database's snapshot now, as `pg_current_snapshot()` spells it
        (`xmin:xmax:xip,...`): which transactions have committed."""
        snapshot = await self._sa.scalar(select(func.pg_current_snapshot().cast(Text)))
        assert snapshot is not None
        return str(snapshot)

    async def settled_between(
        self,
        start: datetime,
        end: datetime,
        merchant_id: str | None,
        *,
        snapshot: str,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[Operation]:
        """Operations settled in [start, end) that had committed in `snapshot` (as
        `current_snapshot` spells one), oldest first (by settled_at, then id): the first
        `limit` of them (all when None) that come after `after`, a (settled_at, id) pair."""
        c = operations.c
        recorded_by = c[RECORDED_BY]
        committed = or_(
            # Written before acquirer migration 0003: long committed.
            recorded_by.is_(None),
            func.pg_visible_in_snapshot(recorded_by, cast(literal(snapshot, Text), PgSnapshot())),
            # Copied from another cluster by a logical restore, under an id this one has not
            # reached: committed before anything this cluster did.
            recorded_by >= func.pg_snapshot_xmax(func.pg_current_snapshot()),
        )
        conditions = [
            c.settled_at.is_not(None),
            c.settled_at >= start,
            c.settled_at < end,
            committed,
        ]
        if merchant_id is not None:
            conditions.append(c.merchant_id == merchant_id)
        if after is not None:
            conditions.append(tuple_(c.settled_at, c.id) > tuple_(*after))
        query = select(operations).where(*conditions).order_by(c.settled_at, c.id)
        rows = await self._sa.execute(query if limit is None else query.limit(limit))
        return [_operation_from_row(row._mapping) for row in rows]


def _operation_row(operation: Operation) -> dict[str, object]:
    return {
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
        "released_minor": operation.released_minor,
    }


def _authorization_row(authorization: Authorization) -> dict[str, object]:
    card = authorization.card
    return {
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
        "network_transaction_id": authorization.network_transaction_id,
        "three_d_secure_authenticated": authorization.three_d_secure_authenticated,
        "setup_off_session": authorization.setup_off_session,
    }


# A declined authorization holds nothing: the authorization's parameters are all NULL and the
# statement inserts no authorization row (the operation's authorization_id is NULL).
_NO_AUTHORIZATION: dict[str, object] = {
    f"auth_{column.name}": None for column in authorizations.columns if column.name != "id"
}
