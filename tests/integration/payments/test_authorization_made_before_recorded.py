"""An authorization whose answer was lost, and which the acquirer's look-ups could not find for
days (an outage), counts its 7 days from when the network made it, as the acquirer's record
of it says, not from when the core finally recorded it: the capture, the expiry job and the
ledger's reservation all end when the network's hold does."""

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.ledger.postings import authorization_id_for
from remit.ledger.repository import JournalRepository
from remit.payments.domain import CaptureMethod, NewPaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.service import EXPIRE_JOB, ConfirmParams, Done, PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from remit.worker.tables import jobs
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

SEVEN_DAYS = timedelta(days=7)


@pytest.fixture
def booked_payments(
    core_engine: AsyncEngine, network: FakeNetwork, clock: FixedClock
) -> PaymentsService:
    """Payments on the test's clock, with the ledger's hooks on it too."""
    return PaymentsService(
        core_engine,
        network,
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(clock),
        radar=Radar(challenge_base_url="http://127.0.0.1"),
        clock=clock,
    )


async def test_an_authorization_found_days_later_counts_from_when_the_network_made_it(
    booked_payments: PaymentsService,
    network: FakeNetwork,
    clock: FixedClock,
    core_engine: AsyncEngine,
    account_id: str,
) -> None:
    payments = booked_payments
    create = call(account_id, "held-long", body=b"manual")
    new = NewPaymentIntent(amount_minor=1000, currency="usd", capture_method=CaptureMethod.MANUAL)
    confirm = ConfirmParams(payment_method_id="pm_visa")
    # Authorized at the network now; the answer is lost and the acquirer's look-ups fail.
    network.faults.append("after")
    network.lookup_faults = 10
    with pytest.raises(RemitError):
        await payments.create_payment_intent(create, new, respond, confirm=confirm)
    network.lookup_faults = 0
    made_at = clock.now()

    # Three days later the retry finds the authorization and records it.
    clock.advance(timedelta(days=3).total_seconds())
    done = await payments.create_payment_intent(create, new, respond, confirm=confirm)

    assert isinstance(done, Done)
    intent = done.value
    assert intent.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id)
    assert charge.authorized_at == made_at
    async with core_engine.connect() as db:
        run_at = await db.scalar(
            select(jobs.c.run_at).where(jobs.c.dedupe_key == f"{EXPIRE_JOB}:{charge.id}")
        )
        reservation = await JournalRepository(db).get_transaction(
            account_id, authorization_id_for(charge.id)
        )
    assert run_at == made_at + SEVEN_DAYS
    assert reservation is not None
    assert reservation.expires_at == made_at + SEVEN_DAYS

    # The eighth day after the network's authorization (the fifth after its recording): a
    # capture is refused.
    clock.advance(timedelta(days=5).total_seconds())
    with pytest.raises(RemitError) as refused:
        await payments.capture_payment_intent(
            call(account_id, "late", endpoint="CapturePaymentIntent"), intent.id, None, respond
        )
    assert refused.value.code == "charge_expired_for_capture"


async def test_a_direct_answer_counts_from_when_it_came(
    booked_payments: PaymentsService, clock: FixedClock, account_id: str
) -> None:
    done = await booked_payments.create_payment_intent(
        call(account_id, "held-now", body=b"manual"),
        NewPaymentIntent(amount_minor=1000, currency="usd", capture_method=CaptureMethod.MANUAL),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(done, Done)
    assert done.value.latest_charge_id is not None
    charge, _ = await booked_payments.get_charge(account_id, done.value.latest_charge_id)
    assert charge.authorized_at == clock.now()
