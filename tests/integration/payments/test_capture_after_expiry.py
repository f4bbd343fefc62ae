"""A capture asked for once the authorization's 7 days have passed is refused, even while the
expiry job, running late, has not released it yet: the network no longer holds the funds."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import Done, PaymentsService, Replay
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


async def test_a_capture_after_the_authorization_expired_is_refused_and_sends_nothing(
    payments: PaymentsService, network: FakeNetwork, core_engine: AsyncEngine, account_id: str
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)
    sent_before = list(network.sent)
    capture = call(account_id, "late-capture", endpoint="CapturePaymentIntent")
    with pytest.raises(RemitError) as refused:
        await payments.capture_payment_intent(capture, held.id, None, respond)
    assert refused.value.code == "charge_expired_for_capture"
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    # Stored under its key: the retry replays the refusal, and captures nothing either.
    retried = await payments.capture_payment_intent(capture, held.id, None, respond)
    assert isinstance(retried, Replay)
    assert b"charge_expired_for_capture" in retried.body
    assert network.sent == sent_before
    intent = await payments.get_payment_intent(account_id, held.id)
    assert intent.status is Status.REQUIRES_CAPTURE
    # Left for the expiry job, which releases it as it would have on time.
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    expired = await payments.get_payment_intent(account_id, held.id)
    assert expired.status is Status.CANCELED


async def test_a_capture_within_the_seven_days_goes_through(
    payments: PaymentsService, account_id: str
) -> None:
    held = await pay(payments, account_id, "held-in-time", capture=CaptureMethod.MANUAL)
    captured = await payments.capture_payment_intent(
        call(account_id, "capture-in-time", endpoint="CapturePaymentIntent"),
        held.id,
        None,
        respond,
    )
    assert isinstance(captured, Done)
    assert captured.value.status is Status.SUCCEEDED
