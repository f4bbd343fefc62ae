"""Which refusals of a keyed call's work are stored under its key (`payments.keyed`).

Stripe saves the answer once the endpoint's work has begun; validation failures, conflicts with
a concurrent request and remit's own failures leave the key free for a retry.
"""

from datetime import UTC, datetime

import pytest
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
