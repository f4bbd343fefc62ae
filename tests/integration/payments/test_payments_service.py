"""The payment flows against a real PostgreSQL, with an in-process card network."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import ChargeStatus, Refund, RefundStatus
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent, Status
from remit.payments.idempotency import RecoveryPoint
from remit.payments.service import (
    EXPIRE_JOB,
    ConfirmParams,
    Done,
    KeyedCall,
    PaymentsService,
    Replay,
)
from remit.payments.tables import idempotency_keys
from remit.worker.tables import jobs
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


def respond(intent: PaymentIntent) -> bytes:
    return f"{intent.id}:{intent.status.value}".encode()


def call(
    account_id: str, key: str, endpoint: str = "CreatePaymentIntent", body: bytes = b"same"
) -> KeyedCall:
    return KeyedCall(account_id=account_id, key=key, endpoint=endpoint, request_body=body)


async def pay(
    payments: PaymentsService,
    account_id: str,
    key: str,
    *,
    pm: str = "pm_visa",
    amount: int = 1000,
    capture: CaptureMethod = CaptureMethod.AUTOMATIC,
) -> PaymentIntent:
    result = await payments.create_payment_intent(
        call(account_id, key, body=f"{pm}{amount}{capture}".encode()),
        NewPaymentIntent(amount_minor=amount, currency="usd", capture_method=capture),
        respond,
        confirm=ConfirmParams(payment_method_id=pm),
    )
    assert isinstance(result, Done)
    return result.value


async def refund_intent(
    payments: PaymentsService, account_id: str, key: str, intent_id: str, amount: int | None
) -> Done[Refund] | Replay:
    """Refund `amount` (None: the rest) of an intent's charge, with idempotency key `key`."""
    return await payments.create_refund(
        call(account_id, key, endpoint="CreateRefund"),
        charge_id=None,
        payment_intent_id=intent_id,
        amount_minor=amount,
        reason=None,
        metadata={},
        respond=lambda r: r.id.encode(),
    )


async def test_a_confirmed_card_payment_succeeds_with_one_captured_charge(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    intent = await pay(payments, account_id, "k1")
    assert intent.status is Status.SUCCEEDED
    assert intent.amount_received_minor == 1000
    assert intent.latest_charge_id is not None
    charge, refunds = await payments.get_charge(
        account_id, intent.latest_charge_id, with_refunds=True
    )
    assert (charge.status, charge.captured, charge.amount_captured_minor) == (
        ChargeStatus.SUCCEEDED,
        True,
        1000,
    )
    assert (refunds.first, refunds.has_more) == ([], False)
    assert network.sent == [charge.id]
    # Made by one request: the intent and its first charge show the same instant.
    assert charge.created_at == intent.created_at


async def test_a_finished_key_replays_and_never_authorizes_again(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    first = await pay(payments, account_id, "k2")
    again = await payments.create_payment_intent(
        call(account_id, "k2", body=b"pm_visa1000CaptureMethod.AUTOMATIC"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert again == Replay(code=0, body=respond(first))
    assert len(network.sent) == 1


async def test_a_key_reused_with_other_parameters_is_an_idempotency_error(
    payments: PaymentsService, account_id: str
) -> None:
    await pay(payments, account_id, "k3")
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "k3", amount=999)
    assert raised.value.error_type == "idempotency_error"
    with pytest.raises(RemitError) as other_endpoint:
        await payments.confirm_payment_intent(
            call(account_id, "k3", endpoint="ConfirmPaymentIntent"),
            "pi_x",
            ConfirmParams(),
            respond,
        )
    assert other_endpoint.value.error_type == "idempotency_error"


async def test_a_decline_is_a_card_error_that_is_stored_and_replayed(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "k4", pm="pm_insufficient")
    error = raised.value
    assert (error.kind, error.error_type, error.code, error.decline_code) == (
        ErrorKind.CARD_DECLINED,
        "card_error",
        "card_declined",
        "insufficient_funds",
    )
    assert error.charge is not None
    replay = await payments.create_payment_intent(
        call(account_id, "k4", body=b"pm_insufficient1000CaptureMethod.AUTOMATIC"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_insufficient"),
    )
    assert isinstance(replay, Replay)
    assert replay.code != 0
    charge, _ = await payments.get_charge(account_id, error.charge)
    intent = await payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert intent.status is Status.REQUIRES_PAYMENT_METHOD
    assert intent.last_payment_error is not None
    assert intent.last_payment_error["decline_code"] == "insufficient_funds"
    assert charge.status is ChargeStatus.FAILED
    assert len(network.sent) == 1


async def test_manual_capture_of_part_releases_the_rest(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    held = await pay(payments, account_id, "k5", capture=CaptureMethod.MANUAL)
    assert (held.status, held.amount_capturable_minor) == (Status.REQUIRES_CAPTURE, 1000)
    async with core_engine.connect() as db:
        staged = (await db.execute(select(jobs.c.kind, jobs.c.run_at))).all()
    assert [row.kind for row in staged] == [EXPIRE_JOB]
    # 7 days from the authorization (the network's answer), which comes before its recording.
    assert held.latest_charge_id is not None
    authorized, _ = await payments.get_charge(account_id, held.latest_charge_id)
    assert authorized.authorized_at is not None
    assert authorized.authorized_at <= held.updated_at
    assert staged[0].run_at - authorized.authorized_at == timedelta(days=7)

    result = await payments.capture_payment_intent(
        call(account_id, "cap5", endpoint="CapturePaymentIntent"), held.id, 600, respond
    )
    assert isinstance(result, Done)
    captured = result.value
    assert (captured.status, captured.amount_received_minor, captured.amount_capturable_minor) == (
        Status.SUCCEEDED,
        600,
        0,
    )
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert (charge.captured, charge.amount_captured_minor) == (True, 600)
    assert f"{charge.id}_capture" in network.sent


async def test_canceling_an_authorization_voids_it_at_the_network(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    held = await pay(payments, account_id, "k7", capture=CaptureMethod.MANUAL)
    result = await payments.cancel_payment_intent(
        call(account_id, "c7", endpoint="CancelPaymentIntent"), held.id, None, respond
    )
    assert isinstance(result, Done)
    assert result.value.status is Status.CANCELED
    assert f"{held.latest_charge_id}_void" in network.sent


async def test_an_uncaptured_authorization_expires_after_seven_days(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    held = await pay(payments, account_id, "k8", capture=CaptureMethod.MANUAL)
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert await payments.expire_authorization(db, account_id, held.id)
    expired = await payments.get_payment_intent(account_id, held.id)
    assert expired.status is Status.CANCELED
    assert expired.cancellation_reason is not None
    assert expired.cancellation_reason.value == "expired"
    assert f"{held.latest_charge_id}_void" in network.sent
    async with core_engine.begin() as db:
        assert not await payments.expire_authorization(db, account_id, held.id)


async def test_partial_refunds_never_exceed_what_was_captured(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    intent = await pay(payments, account_id, "k9")

    async def refund(key: str, amount: int | None) -> Done[Refund] | Replay:
        return await refund_intent(payments, account_id, key, intent.id, amount)

    first = await refund("r1", 300)
    assert isinstance(first, Done)
    with pytest.raises(RemitError) as too_much:
        await refund("r2", 701)
    assert too_much.value.code == "amount_too_large"
    rest = await refund("r3", None)
    assert isinstance(rest, Done)
    with pytest.raises(RemitError) as again:
        await refund("r4", None)
    assert again.value.code == "charge_already_refunded"
    charge, refunds = await payments.get_charge(
        account_id, intent.latest_charge_id or "", with_refunds=True
    )
    assert charge.amount_refunded_minor == 1000
    assert charge.refunded
    assert sorted(r.amount_minor for r in refunds.first) == [300, 700]
    assert all(r.status is RefundStatus.SUCCEEDED for r in refunds.first)


async def test_a_lost_response_is_settled_by_looking_the_reference_up(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    network.faults = ["after"]
    intent = await pay(payments, account_id, "k10")
    assert intent.status is Status.SUCCEEDED
    # Sent once; the lookup found it, so nothing was sent again.
    assert network.sent == [intent.latest_charge_id]


async def test_an_unreachable_network_leaves_a_resumable_key_and_charges_once_later(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    network.faults = ["before"] * 4
    network.lookup_faults = 3
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "k11")
    assert raised.value.should_retry
    async with core_engine.connect() as db:
        point = (await db.execute(select(idempotency_keys.c.recovery_point))).scalar_one()
    assert point == RecoveryPoint.ATTEMPT_CREATED.value
    network.faults = []
    intent = await pay(payments, account_id, "k11")
    assert intent.status is Status.SUCCEEDED
    assert len(network.authorizations) == 1


async def test_fifty_simultaneous_identical_requests_authorize_once(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    async def attempt() -> str:
        try:
            result = await payments.create_payment_intent(
                call(account_id, "same-key", body=b"identical"),
                NewPaymentIntent(amount_minor=1000, currency="usd"),
                respond,
                confirm=ConfirmParams(payment_method_id="pm_visa"),
            )
        except RemitError as error:
            return "409" if error.code == "idempotency_key_in_use" else f"error {error.code}"
        return "done" if isinstance(result, Done) else "replay"

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert outcomes.count("done") == 1
    assert set(outcomes) <= {"done", "replay", "409"}
    assert len(network.authorizations) == 1
    assert len(network.sent) == 1


async def test_the_completer_finishes_a_request_abandoned_after_its_attempt_was_created(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    # Play the first two phases of a request, then "crash" (stop without answering).
    keyed = call(account_id, "k12", body=b"abandoned")
    record = await payments._claim(keyed)
    await payments._start_attempt(
        record,
        respond,
        new=NewPaymentIntent(amount_minor=500, currency="usd"),
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    async with core_engine.begin() as db:
        await db.execute(
            idempotency_keys.update().values(
                locked_until=None, last_run_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1)
            )
        )

    async def resume(found: object) -> object:
        from remit.payments.idempotency import KeyRecord

        assert isinstance(found, KeyRecord)
        return await payments.resume_attempt(found, respond)

    assert await payments.complete_abandoned(resume) == 1
    async with core_engine.connect() as db:
        row = (
            await db.execute(
                select(idempotency_keys.c.recovery_point, idempotency_keys.c.payment_intent_id)
            )
        ).one()
    assert row.recovery_point == RecoveryPoint.FINISHED.value
    finished = await payments.get_payment_intent(account_id, row.payment_intent_id)
    assert finished.status is Status.SUCCEEDED
    assert len(network.sent) == 1
