"""Which refusals of a keyed call's work are stored under its key (`payments.keyed`).

Stripe saves the answer once the endpoint's work has begun; validation failures, conflicts with
a concurrent request and remit's own failures leave the key free for a retry.
"""

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import GRPC_CODES
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay, run_keyed

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _keyed(account_id: str) -> Keyed[str]:
    call = KeyedCall(account_id=account_id, key="k1", endpoint="Change", request_body=b"x")
    return Keyed(call, str.encode)


async def _refused(engine: AsyncEngine, account_id: str, kind: ErrorKind) -> RemitError:
    refusal = RemitError(message=f"refused: {kind.value}", kind=kind, code="some_code")

    async def work(_db: AsyncConnection) -> str:
        raise refusal

    with pytest.raises(RemitError) as raised:
        await run_keyed(engine, _keyed(account_id), NOW, work)
    assert raised.value is refusal
    return refusal


async def _succeed(_db: AsyncConnection) -> str:
    return "done"


@pytest.mark.parametrize("kind", [ErrorKind.FAILED_PRECONDITION, ErrorKind.CARD_DECLINED])
async def test_a_refusal_by_the_state_of_things_is_replayed(
    core_engine: AsyncEngine, account_id: str, kind: ErrorKind
) -> None:
    refusal = await _refused(core_engine, account_id, kind)
    retried = await run_keyed(core_engine, _keyed(account_id), NOW, _succeed)
    assert isinstance(retried, Replay)
    assert retried.code == GRPC_CODES[kind].value[0]
    assert refusal.message.encode() in retried.body


@pytest.mark.parametrize(
    "kind",
    [
        ErrorKind.INVALID_ARGUMENT,
        ErrorKind.NOT_FOUND,
        ErrorKind.CONFLICT,
        ErrorKind.UNAVAILABLE,
        ErrorKind.INTERNAL,
    ],
)
async def test_validation_conflicts_and_remit_failures_leave_the_key_free(
    core_engine: AsyncEngine, account_id: str, kind: ErrorKind
) -> None:
    await _refused(core_engine, account_id, kind)
    retried = await run_keyed(core_engine, _keyed(account_id), NOW, _succeed)
    assert retried == Done("done")


async def test_a_stored_refusal_quoting_a_card_number_is_masked(
    core_engine: AsyncEngine, account_id: str
) -> None:
    refusal = RemitError(
        message="the network refused 4242 4242 4242 4242", kind=ErrorKind.CARD_DECLINED
    )

    async def work(_db: AsyncConnection) -> str:
        raise refusal

    with pytest.raises(RemitError):
        await run_keyed(core_engine, _keyed(account_id), NOW, work)
    async with core_engine.connect() as db:
        # Every stored answer, as a dump or a replica of the table would hold it.
        digits = await db.scalar(text(
            "SELECT count(*) FROM idempotency_keys WHERE regexp_replace("
            "encode(response_body, 'escape'), '[ -]', '', 'g') ~ '4242424242424242'"
        ))  # fmt: skip
    retried = await run_keyed(core_engine, _keyed(account_id), NOW, _succeed)
    assert digits == 0
    assert isinstance(retried, Replay)
    assert b"the network refused [card ****4242]" in retried.body
