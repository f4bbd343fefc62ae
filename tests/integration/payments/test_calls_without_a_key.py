"""A payment call without an idempotency key is a call of its own, whatever its request id: an
internal service that propagates one trace id as `remit-request-id` over several calls makes
several payments, never a replay of the first (or an idempotency error it never asked for). And
a request id is held to a key's bounds: one too long to store is the caller's mistake."""

from typing import Any

import grpc
import pytest

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, MAX_REQUEST_ID_LENGTH, REQUEST_ID_KEY
from remit.payments.keyed_rpc import REPLAYED_KEY
from remit_api.payments.v1 import payments_pb2 as pb

pytestmark = pytest.mark.anyio

TRACE_ID = "trace-4bf92f3577b34da6a3ce929d0e0e4736"


def _traced(account_id: str, request_id: str = TRACE_ID) -> tuple[tuple[str, str], ...]:
    return ((ACCOUNT_KEY, account_id), (REQUEST_ID_KEY, request_id))


async def _create(
    payments_stub: Any, account_id: str, amount: int, request_id: str = TRACE_ID
) -> tuple[pb.PaymentIntent, bool]:
    request = pb.CreatePaymentIntentRequest(amount=amount, currency="usd", payment_method="pm_visa")
    call = payments_stub.CreatePaymentIntent(request, metadata=_traced(account_id, request_id))
    reply = await call
    trailing = dict(await call.trailing_metadata() or ())
    return reply.payment_intent, trailing.get(REPLAYED_KEY) == "true"


async def test_calls_sharing_a_request_id_without_a_key_are_separate_calls(
    payments_stub: Any, account_id: str
) -> None:
    first, first_replayed = await _create(payments_stub, account_id, 1500)
    second, second_replayed = await _create(payments_stub, account_id, 1500)
    assert (first_replayed, second_replayed) == (False, False)
    assert first.id != second.id
    # Other parameters under the same request id: no idempotency error, no key was sent.
    other, _ = await _create(payments_stub, account_id, 2500)
    assert other.amount == 2500
    # Another endpoint under the same request id: no endpoint mismatch either.
    confirmed = await payments_stub.ConfirmPaymentIntent(
        pb.ConfirmPaymentIntentRequest(id=first.id), metadata=_traced(account_id)
    )
    assert confirmed.payment_intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED


async def test_a_request_id_at_its_limit_is_accepted(payments_stub: Any, account_id: str) -> None:
    created, _ = await _create(payments_stub, account_id, 1500, "r" * MAX_REQUEST_ID_LENGTH)
    assert created.amount == 1500


@pytest.mark.parametrize("length", [MAX_REQUEST_ID_LENGTH + 1, 6004])
async def test_a_request_id_too_long_to_store_is_refused(
    payments_stub: Any, account_id: str, length: int
) -> None:
    # Before, it went into the key of the call, past what the key's index holds: a "temporary
    # database problem" on every try.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create(payments_stub, account_id, 1500, "r" * length)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert (detail.param, detail.should_retry) == (REQUEST_ID_KEY, False)
