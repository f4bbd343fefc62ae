"""A capture of more than the intent holds capturable is refused by the intent's state, as a
refund of more than is left of its charge is: the refusal (`amount_too_large` on
`amount_to_capture`, FAILED_PRECONDITION) is the request's answer, stored under its key, so a
retry with the key replays it even once that much has become capturable. An amount no intent
could capture (below 1, past the most a payment may be) is a refusal of the request itself: not
stored, the client may fix it and send it again under the key."""

from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit.payments.domain import CaptureMethod, PaymentIntent, Status
from remit.payments.repository import PaymentIntentRepository
from remit.payments.service import MAX_AMOUNT_MINOR, Done, PaymentsService, Replay
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


async def _capture(
    payments: PaymentsService,
    account_id: str,
    key: str,
    intent_id: str,
    amount: int | None,
    *,
    body: bytes = b"same",
) -> Done[PaymentIntent] | Replay:
    return await payments.capture_payment_intent(
        call(account_id, key, endpoint="CapturePaymentIntent", body=body),
        intent_id,
        amount,
        respond,
    )


def _detail(replay: Replay) -> common_pb2.ErrorDetail:
    detail = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(replay.body).details[0].Unpack(detail)
    return detail


async def _make_capturable(
    engine: AsyncEngine, account_id: str, intent_id: str, amount: int
) -> None:
    """Hold `amount` capturable on the intent, as an authorization grown since would."""
    async with engine.begin() as db:
        intents = PaymentIntentRepository(db)
        intent = await intents.get(account_id, intent_id, for_update=True)
        assert intent is not None
        await intents.save(replace(intent, amount_minor=amount, amount_capturable_minor=amount))


async def test_a_capture_of_more_than_capturable_is_replayed_after_that_much_became_capturable(
    payments: PaymentsService, network: FakeNetwork, core_engine: AsyncEngine, account_id: str
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert held.amount_capturable_minor == 1000

    with pytest.raises(RemitError) as refused:
        await _capture(payments, account_id, "K", held.id, 1500)
    assert (refused.value.code, refused.value.param, refused.value.kind) == (
        "amount_too_large",
        "amount_to_capture",
        ErrorKind.FAILED_PRECONDITION,
    )
    # About the intent, which it embeds as the client sees it, as every refusal by its state.
    assert refused.value.related is not None
    assert not isinstance(refused.value.related, PaymentIntent)

    await _make_capturable(core_engine, account_id, held.id, 2000)
    retried = await _capture(payments, account_id, "K", held.id, 1500)

    assert isinstance(retried, Replay)
    detail = _detail(retried)
    assert (detail.code, detail.param, detail.message) == (
        "amount_too_large",
        "amount_to_capture",
        refused.value.message,
    )
    # Nothing was captured under the key, nor asked of the network.
    after = await payments.get_payment_intent(account_id, held.id)
    assert (after.status, after.amount_received_minor) == (Status.REQUIRES_CAPTURE, 0)
    assert not [sent for sent in network.sent if sent.endswith("_capture")]
    assert after.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, after.latest_charge_id)
    assert not charge.capture_requested


@pytest.mark.parametrize(
    ("amount", "code"),
    [(0, "amount_too_small"), (-5, "amount_too_small"), (MAX_AMOUNT_MINOR + 1, "amount_too_large")],
)
async def test_an_amount_no_intent_could_capture_leaves_the_key_free(
    payments: PaymentsService, account_id: str, amount: int, code: str
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)

    with pytest.raises(RemitError) as refused:
        await _capture(payments, account_id, "fix-me", held.id, amount)
    assert (refused.value.code, refused.value.param, refused.value.kind) == (
        code,
        "amount_to_capture",
        ErrorKind.INVALID_ARGUMENT,
    )

    fixed = await _capture(payments, account_id, "fix-me", held.id, 600, body=b"fixed")

    assert isinstance(fixed, Done)
    assert (fixed.value.status, fixed.value.amount_received_minor) == (Status.SUCCEEDED, 600)


async def test_a_grpc_caller_gets_failed_precondition_first_and_on_the_replay(
    payments: PaymentsService, payments_stub: Any, account_id: str
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "too-much-rpc"))
    request = pb.CapturePaymentIntentRequest(id=held.id, amount_to_capture=1001)

    answers = []
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await payments_stub.CapturePaymentIntent(request, metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        detail = detail_from_rpc_error(refused.value)
        assert detail is not None
        answers.append((detail.code, detail.param, detail.message))
        assert detail.payment_intent.Is(pb.PaymentIntent.DESCRIPTOR)

    assert answers[0] == answers[1]
    assert answers[0][:2] == ("amount_too_large", "amount_to_capture")
