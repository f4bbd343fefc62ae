"""The outcome phase's reads in one round trip: the idempotency key, the intent and the charge
of an attempt, each locked FOR UPDATE.

Every phase locks these rows in the same order, key, then intent, then charge, so that two
requests on one payment never wait on each other crosswise. PostgreSQL locks the rows of a
`FOR UPDATE OF` clause in the order it names them, so one statement keeps that order. When the
join finds nothing (the key vanished, which `relocked` reports), the rows are read one by one,
so each absence is reported as before.
"""

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments import idempotency
from remit.payments.charges import Charge
from remit.payments.domain import PaymentIntent
from remit.payments.idempotency import KeyRecord
from remit.payments.repository import (
    ChargeRepository,
    PaymentIntentRepository,
    charge_from_row,
    intent_from_row,
)
from remit.payments.tables import charges, idempotency_keys, payment_intents
from remit.storage.fastsql import Row, Statement

_PARTS = (("k", idempotency_keys), ("i", payment_intents), ("c", charges))


def _columns(alias: str, table: Table) -> str:
    # Names come from the tables' own metadata; the alias prefix keeps same-named columns of
    # the three tables apart in one row.
    return ", ".join(f'{alias}."{column.name}" AS "{alias}_{column.name}"' for column in table.c)


_LOCK_ATTEMPT = Statement(
    f"SELECT {', '.join(_columns(alias, table) for alias, table in _PARTS)} "  # noqa: S608
    "FROM idempotency_keys AS k "
    "JOIN payment_intents AS i ON i.account_id = k.account_id AND i.id = %(payment_intent_id)s "
    "JOIN charges AS c ON c.account_id = k.account_id AND c.id = %(charge_id)s "
    "WHERE k.account_id = %(account_id)s AND k.key = %(key)s "
    "FOR UPDATE OF k, i, c"
)


def _part(row: Row, alias: str) -> Row:
    prefix = f"{alias}_"
    return {name[len(prefix) :]: value for name, value in row.items() if name.startswith(prefix)}


async def lock_attempt(
    db: AsyncConnection, record: KeyRecord
) -> tuple[KeyRecord, PaymentIntent | None, Charge | None]:
    """The key as stored (checked as `idempotency.relock` checks it), and the attempt's intent
    and charge, all three locked."""
    assert record.payment_intent_id is not None
    assert record.charge_id is not None
    row = await _LOCK_ATTEMPT.first(
        db,
        {
            "account_id": record.account_id,
            "key": record.key,
            "payment_intent_id": record.payment_intent_id,
            "charge_id": record.charge_id,
        },
    )
    if row is None:
        stored = await idempotency.relock(db, record)
        intent = await PaymentIntentRepository(db).get(
            record.account_id, record.payment_intent_id, for_update=True
        )
        charge = await ChargeRepository(db).get(
            record.account_id, record.charge_id, for_update=True
        )
        return stored, intent, charge
    stored = idempotency.relocked(record, _part(row, "k"))
    return stored, intent_from_row(_part(row, "i")), charge_from_row(_part(row, "c"))
