"""An attempt its intent leaves behind before it finishes (waiting for its 3-D Secure challenge,
or authenticated and waiting for a manual confirmation) ends `failed` in the transaction of the
intent's change: canceled, updated so that it must be confirmed again, or confirmed again with a
new attempt. Nothing was authorized for it, so nothing reaches the ledger, and no charge.failed
is recorded (Stripe has no charge for a payment never authenticated). A challenge the cardholder
fails, or answers too late, ends its charge the same way.

Real PostgreSQL, the core's hooks (events, the ledger), Radar, and an in-process network."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments.charges import Charge, ChargeStatus
from remit.payments.domain import (
    CancellationReason,
    ConfirmationMethod,
    NewPaymentIntent,
    PaymentIntent,
    Status,
    Updated,
)
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import KeyRecord
from remit.payments.risk import AUTHENTICATION_FAILURE_MESSAGE, Authentication
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.authentication import ThreeDSecureService
from remit.radar.challenges import ChallengeStatus, ThreeDSChallenge
from remit.radar.gate import Radar
from remit.webhooks.tables import events
from tests.integration.radar.test_radar_in_payments import Methods
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

CANCELED_BEFORE_AUTHENTICATION = (
    "The payment was abandoned before 3-D Secure authentication was completed: the "
    "PaymentIntent was canceled."
)


class Parts:
    """The payments service and the challenge page's service, with the hooks the core runs."""

    def __init__(self, engine: AsyncEngine, clock: FixedClock) -> None:
        self.engine = engine
        self.network = FakeNetwork()
        gate = Radar(challenge_base_url="http://remit.test", clock=clock)
        hooks = payment_hooks()
        self.payments = PaymentsService(
            engine,
            self.network,
            Methods(),
            present=payment_intent_message,
            hooks=hooks,
            clock=clock,
            radar=gate,
        )
        self.three_d_secure = ThreeDSecureService(
            engine, self.payments, Methods(), gate, hooks, clock=clock
        )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def parts(core_engine: AsyncEngine, clock: FixedClock) -> Parts:
    return Parts(core_engine, clock)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


def respond(intent: PaymentIntent) -> bytes:
    return intent.status.value.encode()


def _call(account_id: str, key: str, endpoint: str) -> KeyedCall:
    return KeyedCall(account_id, key, endpoint, key.encode())


async def _waiting_for_its_challenge(
    parts: Parts,
    account_id: str,
    key: str,
    *,
    manual: bool = False,
) -> PaymentIntent:
    """A payment of 1000 usd whose confirmation asked for 3-D Secure: its charge is pending and
    its challenge waits (the network is not asked before it)."""
    result = await parts.payments.create_payment_intent(
        _call(account_id, key, "CreatePaymentIntent"),
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            return_url="https://shop.example/return",
            confirmation_method=ConfirmationMethod.MANUAL
            if manual
            else ConfirmationMethod.AUTOMATIC,
        ),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa", request_three_d_secure="any"),
    )
    assert isinstance(result, Done)
    assert result.value.status is Status.REQUIRES_ACTION
    assert (await _charge(parts, account_id, result.value.latest_charge_id)).status is (
        ChargeStatus.PENDING
    )
    return result.value


async def _challenge_of(parts: Parts, account_id: str, intent: PaymentIntent) -> ThreeDSChallenge:
    assert intent.next_action is not None
    redirect = intent.next_action["redirect_to_url"]
    assert isinstance(redirect, dict)
    return await parts.three_d_secure.get_challenge(account_id, str(redirect["url"]).split("/")[-1])


async def _pass_challenge(parts: Parts, account_id: str, intent: PaymentIntent) -> PaymentIntent:
    challenge = await _challenge_of(parts, account_id, intent)
    done = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=True, build=lambda c, i: i.status.value.encode()
    )
    assert isinstance(done, Done)
    return done.value[1]


async def _charge(parts: Parts, account_id: str, charge_id: str | None) -> Charge:
    assert charge_id is not None
    charge, _ = await parts.payments.get_charge(account_id, charge_id)
    return charge


async def _statuses(parts: Parts, account_id: str) -> dict[str, ChargeStatus]:
    page, _ = await parts.payments.list_charges(account_id, limit=100)
    return {charge.id: charge.status for charge, _ in page}


async def _cancel(parts: Parts, account_id: str, intent_id: str, key: str) -> PaymentIntent:
    canceled = await parts.payments.cancel_payment_intent(
        _call(account_id, key, "CancelPaymentIntent"),
        intent_id,
        CancellationReason.ABANDONED,
        respond,
    )
    assert isinstance(canceled, Done)
    return canceled.value


async def _update(
    parts: Parts, account_id: str, intent_id: str, key: str, **changes: object
) -> PaymentIntent:
    updated = await parts.payments.update_payment_intent(
        _call(account_id, key, "UpdatePaymentIntent"),
        intent_id,
        Updated(at=datetime.now(UTC), **changes),  # type: ignore[arg-type]
        respond,
    )
    assert isinstance(updated, Done)
    return updated.value


async def _confirm(
    parts: Parts, account_id: str, intent_id: str, key: str, **params: object
) -> PaymentIntent:
    """A later confirmation, which asks for no 3-D Secure of its own unless told to: the
    first one's `request_three_d_secure=any` is the intent's since, and would be asked for
    again."""
    params.setdefault("request_three_d_secure", "automatic")
    confirmed = await parts.payments.confirm_payment_intent(
        _call(account_id, key, "ConfirmPaymentIntent"),
        intent_id,
        ConfirmParams(**params),  # type: ignore[arg-type]
        respond,
    )
    assert isinstance(confirmed, Done)
    return confirmed.value


async def _event_types(engine: AsyncEngine, account_id: str) -> list[str]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(events.c.type)
            .where(events.c.account_id == account_id)
            .order_by(events.c.created_at, events.c.seq)
        )
    return [row.type for row in rows]


async def _ledger_rows_of(engine: AsyncEngine, account_id: str, charge_id: str) -> int:
    """Ledger transactions and balance transactions that name the charge."""
    async with engine.connect() as db:
        count = await db.scalar(
            text(
                "SELECT (SELECT count(*) FROM ledger_transactions WHERE account_id = :account "
                "AND metadata->>'charge' = :charge) + (SELECT count(*) FROM balance_transactions "
                "WHERE account_id = :account AND charge_id = :charge)"
            ),
            {"account": account_id, "charge": charge_id},
        )
    return int(count or 0)


def _assert_abandoned(charge: Charge, code: str, message: str) -> None:
    assert (charge.status, charge.failure_code, charge.failure_message) == (
        ChargeStatus.FAILED,
        code,
        message,
    )
    assert charge.decline_code is None
    assert charge.authorization_id is None
    assert (charge.captured, charge.amount_captured_minor) == (False, 0)
    outcome = dict(charge.outcome or {})
    assert (outcome.get("type"), outcome.get("network_status"), outcome.get("reason")) == (
        "invalid",
        "not_sent_to_network",
        None,
    )
    # Radar's assessment of the attempt stays.
    assert outcome.get("risk_level") == (charge.risk or {}).get("risk_level")


async def test_a_cancel_while_the_challenge_waits_fails_its_charge(
    parts: Parts, account_id: str
) -> None:
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    canceled = await _cancel(parts, account_id, intent.id, "cancel")
    assert canceled.status is Status.CANCELED
    charge = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        charge, "payment_intent_authentication_failure", CANCELED_BEFORE_AUTHENTICATION
    )
    assert charge.outcome is not None
    assert charge.outcome["seller_message"] == (
        "This payment was never sent to the card network: the PaymentIntent was canceled "
        "before it was completed."
    )
    assert await _statuses(parts, account_id) == {charge.id: ChargeStatus.FAILED}
    # The intent's own events only: no charge event for a payment never authenticated.
    assert await _event_types(parts.engine, account_id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    ]
    assert parts.network.sent == []
    assert await _ledger_rows_of(parts.engine, account_id, charge.id) == 0
    # The challenge is offered no more.
    challenge = await _challenge_of(parts, account_id, intent)
    assert challenge.status is ChallengeStatus.EXPIRED


async def test_a_new_amount_while_the_challenge_waits_fails_its_charge_at_once(
    parts: Parts, account_id: str
) -> None:
    """The update sends the intent back to `requires_confirmation`: the old challenge can
    never be answered, so its charge fails then, not only once a new confirmation comes (which
    may never come). The next confirmation's attempt is a new charge, paid after its own
    challenge; the old one stays failed, with nothing in the ledger."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    updated = await _update(parts, account_id, intent.id, "bigger", amount_minor=5000)
    assert (updated.status, updated.latest_charge_id) == (
        Status.REQUIRES_CONFIRMATION,
        intent.latest_charge_id,
    )
    old = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        old,
        "payment_intent_authentication_failure",
        "The payment was abandoned before 3-D Secure authentication was completed: the "
        "PaymentIntent's amount, currency or payment method changed.",
    )
    again = await _confirm(
        parts, account_id, intent.id, "again", payment_method_id="pm_visa",
        request_three_d_secure="any", return_url="https://shop.example/return",
    )  # fmt: skip
    assert again.latest_charge_id != old.id
    paid = await _pass_challenge(parts, account_id, again)
    assert (paid.status, paid.amount_received_minor) == (Status.SUCCEEDED, 5000)
    assert await _statuses(parts, account_id) == {
        old.id: ChargeStatus.FAILED,
        again.latest_charge_id: ChargeStatus.SUCCEEDED,
    }
    assert await _charge(parts, account_id, old.id) == old
    assert "charge.failed" not in await _event_types(parts.engine, account_id)
    assert await _ledger_rows_of(parts.engine, account_id, old.id) == 0
    assert await _ledger_rows_of(parts.engine, account_id, str(again.latest_charge_id)) > 0
    assert parts.network.sent == [f"{again.latest_charge_id}_3ds"]


async def test_a_new_payment_method_while_the_challenge_waits_fails_its_charge(
    parts: Parts, account_id: str
) -> None:
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    updated = await _update(parts, account_id, intent.id, "other", payment_method_id="pm_other")
    assert updated.status is Status.REQUIRES_CONFIRMATION
    old = await _charge(parts, account_id, intent.latest_charge_id)
    assert (old.status, old.failure_code) == (
        ChargeStatus.FAILED,
        "payment_intent_authentication_failure",
    )


async def test_a_change_of_metadata_leaves_the_waiting_challenge_payable(
    parts: Parts, account_id: str
) -> None:
    """Only a change the waiting attempt cannot pay for leaves it behind."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    updated = await parts.payments.update_payment_intent(
        _call(account_id, "described", "UpdatePaymentIntent"),
        intent.id,
        Updated(at=datetime.now(UTC), changes={"description": "order 12"}),
        respond,
        metadata=({"order": "12"}, [], False),
    )
    assert isinstance(updated, Done)
    assert updated.value.status is Status.REQUIRES_ACTION
    assert (await _charge(parts, account_id, intent.latest_charge_id)).status is (
        ChargeStatus.PENDING
    )
    paid = await _pass_challenge(parts, account_id, intent)
    assert (paid.status, paid.latest_charge_id) == (Status.SUCCEEDED, intent.latest_charge_id)


async def test_an_authenticated_attempt_left_by_a_confirmation_with_another_card_fails(
    parts: Parts, account_id: str
) -> None:
    """Confirmed manually: after its challenge passed, the intent waits in
    `requires_confirmation` with the authenticated attempt. A confirmation with another card
    starts a new attempt; the authenticated one, never sent for authorization, fails in the
    same transaction."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay", manual=True)
    waiting = await _pass_challenge(parts, account_id, intent)
    assert waiting.status is Status.REQUIRES_CONFIRMATION
    assert parts.network.sent == []
    paid = await _confirm(parts, account_id, intent.id, "other", payment_method_id="pm_other")
    assert paid.status is Status.SUCCEEDED
    assert paid.latest_charge_id != intent.latest_charge_id
    left = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        left,
        "payment_intent_payment_attempt_failed",
        "The payment was authenticated but never confirmed: the PaymentIntent was confirmed "
        "again with a new payment attempt.",
    )
    assert parts.network.sent == [paid.latest_charge_id]
    assert await _ledger_rows_of(parts.engine, account_id, left.id) == 0
    assert "charge.failed" not in await _event_types(parts.engine, account_id)


async def test_an_authenticated_attempt_fails_when_its_intent_is_canceled(
    parts: Parts, account_id: str
) -> None:
    intent = await _waiting_for_its_challenge(parts, account_id, "pay", manual=True)
    await _pass_challenge(parts, account_id, intent)
    await _cancel(parts, account_id, intent.id, "cancel")
    left = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        left,
        "payment_intent_payment_attempt_failed",
        "The payment was authenticated but never confirmed: the PaymentIntent was canceled.",
    )
    assert parts.network.sent == []


async def test_an_authenticated_attempt_survives_a_change_of_description(
    parts: Parts, account_id: str
) -> None:
    """A manual confirmation still goes on with the authenticated attempt after an update
    that leaves its amount, currency and card alone."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay", manual=True)
    await _pass_challenge(parts, account_id, intent)
    await _update(parts, account_id, intent.id, "described", changes={"description": "order 7"})
    assert (await _charge(parts, account_id, intent.latest_charge_id)).status is (
        ChargeStatus.PENDING
    )
    paid = await _confirm(parts, account_id, intent.id, "confirm", payment_method_id="pm_visa")
    assert (paid.status, paid.latest_charge_id) == (Status.SUCCEEDED, intent.latest_charge_id)


async def test_an_expired_challenge_waits_with_its_intent_until_the_intent_moves_on(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    """Until the worker's sweep ends it (`remit.radar.expired_challenges`), a challenge nobody
    answers leaves its intent in `requires_action`; the page shows it expired. A merchant who
    moves the intent on first fails its charge with that change."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    clock.advance(2 * 3600)
    assert (await _challenge_of(parts, account_id, intent)).status is ChallengeStatus.EXPIRED
    still = await parts.payments.get_payment_intent(account_id, intent.id)
    assert still.status is Status.REQUIRES_ACTION
    await _cancel(parts, account_id, intent.id, "cancel")
    charge = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        charge, "payment_intent_authentication_failure", CANCELED_BEFORE_AUTHENTICATION
    )
    assert charge.updated_at == clock.now()


async def _complete_abandoned(parts: Parts, clock: FixedClock) -> None:
    """The completer, once the stopped request's lease and backoff have run out."""
    clock.advance(2 * 3600)

    async def resume(record: KeyRecord) -> object:
        if record.endpoint == "CancelPaymentIntent":
            return await parts.payments.resume_cancel(record, CancellationReason.ABANDONED, respond)
        return await parts.payments.resume_attempt(record, respond)

    assert await parts.payments.complete_abandoned(resume) == 1


async def test_a_cancel_stopped_after_its_first_phase_is_finished_by_the_completer(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    """The cancel decides (first phase) and its process dies before it cancels: the completer
    cancels, and the charge fails with the intent."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    record = await parts.payments._claim(_call(account_id, "cancel", "CancelPaymentIntent"))
    await parts.payments._start_cancel(record, intent.id)
    assert (await _charge(parts, account_id, intent.latest_charge_id)).status is (
        ChargeStatus.PENDING
    )
    await _complete_abandoned(parts, clock)
    canceled = await parts.payments.get_payment_intent(account_id, intent.id)
    assert canceled.status is Status.CANCELED
    charge = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        charge, "payment_intent_authentication_failure", CANCELED_BEFORE_AUTHENTICATION
    )
    assert await _statuses(parts, account_id) == {charge.id: ChargeStatus.FAILED}


async def test_a_new_confirmation_stopped_after_its_attempt_began_leaves_no_pending_charge(
    parts: Parts, account_id: str, clock: FixedClock
) -> None:
    """The authenticated attempt fails with the start of the new attempt (one transaction);
    the process dies before the network is asked; the completer finishes the new attempt."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay", manual=True)
    await _pass_challenge(parts, account_id, intent)
    record = await parts.payments._claim(_call(account_id, "other", "ConfirmPaymentIntent"))
    await parts.payments._start_attempt(
        record,
        respond,
        intent_id=intent.id,
        confirm=ConfirmParams(payment_method_id="pm_other", request_three_d_secure="automatic"),
    )
    left = await _charge(parts, account_id, intent.latest_charge_id)
    assert (left.status, left.failure_code) == (
        ChargeStatus.FAILED,
        "payment_intent_payment_attempt_failed",
    )
    await _complete_abandoned(parts, clock)
    paid = await parts.payments.get_payment_intent(account_id, intent.id)
    assert paid.status is Status.SUCCEEDED
    assert await _statuses(parts, account_id) == {
        left.id: ChargeStatus.FAILED,
        paid.latest_charge_id: ChargeStatus.SUCCEEDED,
    }
    assert await _charge(parts, account_id, left.id) == left


async def _answer_challenge(
    parts: Parts, account_id: str, intent: PaymentIntent, *, passed: bool
) -> PaymentIntent:
    challenge = await _challenge_of(parts, account_id, intent)
    done = await parts.three_d_secure.complete(
        account_id, challenge.id, passed=passed, build=lambda c, i: i.status.value.encode()
    )
    assert isinstance(done, Done)
    return done.value[1]


@pytest.mark.parametrize(
    ("late", "why"),
    [
        (False, "the cardholder failed 3-D Secure authentication."),
        (True, "its 3-D Secure challenge expired before the cardholder answered it."),
    ],
)
async def test_a_failed_or_expired_challenge_fails_its_charge_as_never_sent_to_the_network(
    parts: Parts, account_id: str, clock: FixedClock, late: bool, why: str
) -> None:
    """The cardholder fails the challenge, or passes it too late: the intent goes back to
    `requires_payment_method` with `payment_intent_authentication_failure`, its events as
    before. Its charge ends as an attempt the intent leaves behind does: never sent to the
    network (`invalid` / `not_sent_to_network`), and no charge.failed, since Stripe has no
    charge for a payment whose authentication failed; the intent's error names none."""
    intent = await _waiting_for_its_challenge(parts, account_id, "pay")
    if late:
        clock.advance(2 * 3600)
    after = await _answer_challenge(parts, account_id, intent, passed=late)
    assert after.status is Status.REQUIRES_PAYMENT_METHOD
    assert after.last_payment_error is not None
    assert after.last_payment_error["code"] == "payment_intent_authentication_failure"
    assert "charge" not in after.last_payment_error
    charge = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        charge, "payment_intent_authentication_failure", AUTHENTICATION_FAILURE_MESSAGE
    )
    assert charge.outcome is not None
    assert charge.outcome["seller_message"] == (
        f"This payment was never sent to the card network: {why}"
    )
    assert (charge.authentication or {}).get("result") == "failed"
    assert await _event_types(parts.engine, account_id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
    ]
    assert parts.network.sent == []
    assert await _ledger_rows_of(parts.engine, account_id, charge.id) == 0


async def test_a_decline_after_a_passed_challenge_is_still_a_charge_failed(
    parts: Parts, account_id: str
) -> None:
    """Authenticated, the attempt reaches the network: its decline is the issuer's answer, told
    with charge.failed as any decline is."""
    result = await parts.payments.create_payment_intent(
        _call(account_id, "pay", "CreatePaymentIntent"),
        NewPaymentIntent(amount_minor=1000, currency="usd", return_url="https://shop.example/r"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_declined", request_three_d_secure="any"),
    )
    assert isinstance(result, Done)
    with pytest.raises(RemitError):
        await _answer_challenge(parts, account_id, result.value, passed=True)
    charge = await _charge(parts, account_id, result.value.latest_charge_id)
    assert charge.outcome is not None
    assert (charge.status, charge.outcome["type"]) == (ChargeStatus.FAILED, "issuer_declined")
    assert await _event_types(parts.engine, account_id) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.failed",
        "payment_intent.payment_failed",
    ]


async def test_turning_on_off_session_usage_while_the_challenge_waits_needs_a_new_confirmation(
    parts: Parts, account_id: str
) -> None:
    """The waiting attempt tells the network the card is not being set up for off-session
    payments (its confirmation said so); had it gone on after the update, the card would be
    saved with no setup its later off-session payments could cite, and they would be declined
    `authentication_required`. The update sends the intent back to be confirmed again."""
    intent = await _waiting_for_its_challenge(parts, account_id, "usage")
    updated = await _update(
        parts, account_id, intent.id, "usage-on", changes={"setup_future_usage": "off_session"}
    )
    assert (updated.status, updated.next_action, updated.setup_future_usage) == (
        Status.REQUIRES_CONFIRMATION,
        None,
        "off_session",
    )
    old = await _charge(parts, account_id, intent.latest_charge_id)
    _assert_abandoned(
        old,
        "payment_intent_authentication_failure",
        "The payment was abandoned before 3-D Secure authentication was completed: the "
        "PaymentIntent's setup_future_usage changed.",
    )
    same = await _update(
        parts, account_id, intent.id, "usage-same", changes={"setup_future_usage": "off_session"}
    )
    assert same.status is Status.REQUIRES_CONFIRMATION


@pytest.mark.parametrize("how", ["update", "confirm"])
async def test_a_manual_confirmation_that_now_sets_the_card_up_authenticates_again(
    parts: Parts, account_id: str, how: str
) -> None:
    """The cardholder authenticated a payment that did not set the card up for off-session
    payments, and the network was to be told so. Turning setup_future_usage on before the
    manual confirmation (by an update, or in the confirmation itself) makes a new attempt
    (authenticated again where its card asks for it) that tells the network of the setup; had
    the confirmation gone on with the old one, the card would be saved with no setup for its
    renewals to cite."""
    intent = await _waiting_for_its_challenge(parts, account_id, f"setup-{how}", manual=True)
    authenticated = await _pass_challenge(parts, account_id, intent)
    assert authenticated.status is Status.REQUIRES_CONFIRMATION
    usage: dict[str, object] = {"setup_future_usage": "off_session"}
    if how == "update":
        await _update(parts, account_id, intent.id, f"setup-{how}-on", changes=usage)
        usage = {}
    again = await _confirm(
        parts, account_id, intent.id, f"setup-{how}-go", payment_method_id="pm_visa", **usage
    )
    # A new attempt, which this card pays without asking for 3-D Secure again.
    assert again.latest_charge_id != intent.latest_charge_id
    assert again.status is Status.SUCCEEDED
    new = await _charge(parts, account_id, again.latest_charge_id)
    assert Authentication.from_json(new.authentication).setup_off_session
    old = await _charge(parts, account_id, intent.latest_charge_id)
    assert old.status is ChargeStatus.FAILED
