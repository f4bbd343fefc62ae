"""A payment request held partway (an acquirer or vault outage, a crash) on a clock the test
moves: what the tests of a key's life and of old unfinished requests both start from."""

from datetime import timedelta

from remit.payments.domain import NewPaymentIntent
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.service import ConfirmParams, KeyedCall, PaymentsService
from tests.integration.payments.test_payments_service import respond

# Past a key's life (a day) and its retention (three days), counted from the request's start.
A_DAY_AND_MORE = timedelta(hours=25).total_seconds()
PAST_RETENTION = timedelta(hours=73).total_seconds()


def new_payment() -> NewPaymentIntent:
    return NewPaymentIntent(amount_minor=700, currency="usd")


def confirm() -> ConfirmParams:
    return ConfirmParams(payment_method_id="pm_visa")


async def held_after_attempt(payments: PaymentsService, keyed: KeyedCall) -> KeyRecord:
    """A payment whose request stopped at `attempt_created` (an outage, or a crash): its
    intent is processing, its authorization not yet asked for (or asked, with the answer
    lost)."""
    record = await payments._claim(keyed)
    record, _ = await payments._start_attempt(record, respond, new=new_payment(), confirm=confirm())
    assert record.recovery_point is RecoveryPoint.ATTEMPT_CREATED
    return record
