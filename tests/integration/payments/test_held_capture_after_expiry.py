"""A capture held at `attempt_created` (it never reached the network, whose look-ups then
failed) and resumed after the authorization's 7 days, by a retry under its key or by the
completer, is not sent: the network no longer holds the funds. A capture the look-up finds at
the network stands, however late it is found."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.domain import CaptureMethod, PaymentIntent, Status
from remit.payments.idempotency import KeyRecord
from remit.payments.service import Done, PaymentsService, Replay
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

PAST_THE_SEVEN_DAYS = timedelta(days=7, seconds=1).total_seconds()


def _said_not_sent(caplog: pytest.LogCaptureFixture, held: PaymentIntent) -> None:
    """The log says, once, which capture was not sent and why, by its ids alone."""
    said = [
        record
        for record in caplog.records
        if record.name == "remit.payments.service" and "not sent" in record.getMessage()
    ]
    assert len(said) == 1
    (record,) = said
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"{held.latest_charge_id}_capture" in message
    assert "CapturePaymentIntent capture-1" in message
    assert "authorization expired" in message


async def _held_capture(
    payments: PaymentsService, network: FakeNetwork, account_id: str, *, reaches: bool
) -> PaymentIntent:
    """A manual payment whose capture under "capture-1" stopped at `attempt_created`, the
    network out of reach for look-ups; `reaches`: whether the capture got to the network."""
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    network.faults.append("after" if reaches else "before")
    network.lookup_faults = 10
    with pytest.raises(RemitError):
        await payments.capture_payment_intent(
            call(account_id, "capture-1", endpoint="CapturePaymentIntent"), held.id, None, respond
        )
    network.lookup_faults = 0
    return held


async def test_a_retry_after_the_seven_days_sends_nothing_and_leaves_the_intent_to_expire(
    payments: PaymentsService,
    network: FakeNetwork,
    core_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    held = await _held_capture(payments, network, account_id, reaches=False)
    sent_before = list(network.sent)
    await let_authorization_expire(core_engine, held.id)
    capture = call(account_id, "capture-1", endpoint="CapturePaymentIntent")

    with (
        caplog.at_level(logging.WARNING, logger="remit.payments.service"),
        pytest.raises(RemitError) as refused,
    ):
        await payments.capture_payment_intent(capture, held.id, None, respond)

    assert refused.value.code == "charge_expired_for_capture"
    assert network.sent == sent_before
    _said_not_sent(caplog, held)
    # Stored under the key; the charge no longer being captured, the expiry job expires it.
    replayed = await payments.capture_payment_intent(capture, held.id, None, respond)
    assert isinstance(replayed, Replay)
    assert b"charge_expired_for_capture" in replayed.body
    assert (await payments.get_payment_intent(account_id, held.id)).status is (
        Status.REQUIRES_CAPTURE
    )
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    assert (await payments.get_payment_intent(account_id, held.id)).status is Status.CANCELED


async def test_the_completer_after_the_seven_days_sends_nothing(
    timed_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    held = await _held_capture(timed_payments, network, account_id, reaches=False)
    sent_before = list(network.sent)
    clock.advance(PAST_THE_SEVEN_DAYS)

    async def resume(record: KeyRecord) -> object:
        return await timed_payments.resume_capture(record, respond)

    with caplog.at_level(logging.WARNING, logger="remit.payments.service"):
        assert await timed_payments.complete_abandoned(resume) == 1

    assert network.sent == sent_before
    _said_not_sent(caplog, held)
    replayed = await timed_payments.capture_payment_intent(
        call(account_id, "capture-1", endpoint="CapturePaymentIntent"), held.id, None, respond
    )
    assert isinstance(replayed, Replay)
    assert b"charge_expired_for_capture" in replayed.body
    intent = await timed_payments.get_payment_intent(account_id, held.id)
    assert intent.status is Status.REQUIRES_CAPTURE
    assert intent.latest_charge_id is not None
    charge, _ = await timed_payments.get_charge(account_id, intent.latest_charge_id)
    assert not charge.capture_requested  # the expiry job's to release


async def test_a_capture_found_at_the_network_after_the_seven_days_still_succeeds(
    payments: PaymentsService, network: FakeNetwork, core_engine: AsyncEngine, account_id: str
) -> None:
    held = await _held_capture(payments, network, account_id, reaches=True)
    await let_authorization_expire(core_engine, held.id)

    retried = await payments.capture_payment_intent(
        call(account_id, "capture-1", endpoint="CapturePaymentIntent"), held.id, None, respond
    )

    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
