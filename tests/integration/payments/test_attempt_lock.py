"""The outcome phase's one-statement read: the key, the intent and the charge as separate reads
would return them, all three locked, and the same errors as the separate reads when the key is
gone or was taken over."""

from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import RemitError
from remit.payments.attempt_lock import lock_attempt
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.repository import ChargeRepository, PaymentIntentRepository
from remit.payments.service import PaymentsService
from remit.payments.tables import idempotency_keys
from tests.integration.payments.test_payments_service import pay
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


async def _record_of(engine: AsyncEngine, account_id: str, key: str) -> KeyRecord:
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key
                )
            )
        ).one()
    return KeyRecord(
        account_id=row.account_id,
        key=row.key,
        endpoint=row.endpoint,
        request_body=bytes(row.request_body),
        recovery_point=RecoveryPoint(row.recovery_point),
        response_code=row.response_code,
        response_body=None if row.response_body is None else bytes(row.response_body),
        payment_intent_id=row.payment_intent_id,
        charge_id=row.charge_id,
        refund_id=row.refund_id,
        request_id=row.request_id,
        created_at=row.created_at,
        owner=row.owner,
    )


async def test_it_reads_what_the_separate_reads_read_and_locks_all_three_rows(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    databases: WorkerDatabases,
) -> None:
    await pay(payments, account_id, "locked")
    record = await _record_of(core_engine, account_id, "locked")
    assert record.payment_intent_id is not None
    assert record.charge_id is not None
    async with core_engine.begin() as db:
        stored, intent, charge = await lock_attempt(db, record)
        assert stored == record
        assert intent == await PaymentIntentRepository(db).get(account_id, record.payment_intent_id)
        assert charge == await ChargeRepository(db).get(account_id, record.charge_id)
        async with await psycopg.AsyncConnection.connect(
            databases.core_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as other:
            for table, key_column, key in (
                ("idempotency_keys", "key", record.key),
                ("payment_intents", "id", record.payment_intent_id),
                ("charges", "id", record.charge_id),
            ):
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    await other.execute(
                        f"SELECT 1 FROM {table} WHERE {key_column} = %s FOR UPDATE NOWAIT",  # noqa: S608
                        (key,),
                    )


async def test_a_key_taken_over_or_gone_fails_as_relock_does(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    await pay(payments, account_id, "taken")
    record = await _record_of(core_engine, account_id, "taken")
    in_flight = replace(record, recovery_point=RecoveryPoint.AUTHORIZATION_DONE)
    async with core_engine.connect() as db:
        await db.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.key == "taken")
            .values(recovery_point=RecoveryPoint.AUTHORIZATION_DONE.value, owner="the-retry")
        )
        await db.commit()
    async with core_engine.begin() as db:
        with pytest.raises(RemitError) as raised:
            await lock_attempt(db, in_flight)
    assert raised.value.code == "idempotency_key_in_use"
    gone = replace(record, key="never-used", created_at=datetime.now(UTC))
    async with core_engine.begin() as db:
        with pytest.raises(RemitError) as raised:
            await lock_attempt(db, gone)
    assert raised.value.code == "idempotency_key_in_use"
