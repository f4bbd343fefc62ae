"""Every (status, event) pair: the legal ones move to the documented status, the rest refuse."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.core.errors import ErrorKind
from remit.payments.abandoned_attempts import LeftBy, left_by_update
from remit.payments.domain import (
    ALLOWED_FROM,
    ActionCompleted,
    ActionFailed,
    ActionRequired,
    Annotated,
    Authorized,
    Canceled,
    CancellationReason,
    Captured,
    CaptureMethod,
    ConfirmationMethod,
    ConfirmationStarted,
    Declined,
    Event,
    Expired,
    PaymentIntent,
    Status,
    UnexpectedStateError,
    Updated,
    transition,
    update_event,
)

T = datetime(2026, 11, 1, tzinfo=UTC)

EVENTS: dict[str, Event] = {
    "update": Updated(at=T, changes={"description": "new"}),
    "annotate": Annotated(at=T, changes={"description": "new"}),
    "confirm": ConfirmationStarted(at=T, payment_method_id="pm_1", charge_id="ch_1"),
    "authorized_and_captured": Authorized(at=T, captured_minor=1000),
    "authorized_only": Authorized(at=T, captured_minor=0),
    "declined": Declined(at=T, error={"type": "card_error", "code": "card_declined"}),
    "action_required": ActionRequired(at=T, next_action={"type": "redirect_to_url"}),
    "action_completed": ActionCompleted(at=T),
    "action_failed": ActionFailed(at=T, error={"code": "payment_intent_authentication_failure"}),
    "capture": Captured(at=T, amount_minor=1000),
    "cancel": Canceled(at=T, reason=CancellationReason.REQUESTED_BY_CUSTOMER),
    "expire": Expired(at=T),
}

# (status, event) -> the status after it; every pair not listed must be refused.
LEGAL: dict[tuple[Status, str], Status] = {
    (Status.REQUIRES_PAYMENT_METHOD, "update"): Status.REQUIRES_PAYMENT_METHOD,
    (Status.REQUIRES_CONFIRMATION, "update"): Status.REQUIRES_CONFIRMATION,
    (Status.REQUIRES_ACTION, "update"): Status.REQUIRES_ACTION,
    (Status.REQUIRES_CAPTURE, "update"): Status.REQUIRES_CAPTURE,
    **{(status, "annotate"): status for status in Status if status is not Status.CANCELED},
    (Status.REQUIRES_PAYMENT_METHOD, "confirm"): Status.PROCESSING,
    (Status.REQUIRES_CONFIRMATION, "confirm"): Status.PROCESSING,
    (Status.PROCESSING, "authorized_and_captured"): Status.SUCCEEDED,
    (Status.PROCESSING, "authorized_only"): Status.REQUIRES_CAPTURE,
    (Status.PROCESSING, "declined"): Status.REQUIRES_PAYMENT_METHOD,
    (Status.PROCESSING, "action_required"): Status.REQUIRES_ACTION,
    (Status.REQUIRES_ACTION, "action_completed"): Status.PROCESSING,
    (Status.REQUIRES_ACTION, "action_failed"): Status.REQUIRES_PAYMENT_METHOD,
    (Status.REQUIRES_CAPTURE, "capture"): Status.SUCCEEDED,
    (Status.REQUIRES_PAYMENT_METHOD, "cancel"): Status.CANCELED,
    (Status.REQUIRES_CONFIRMATION, "cancel"): Status.CANCELED,
    (Status.REQUIRES_ACTION, "cancel"): Status.CANCELED,
    (Status.REQUIRES_CAPTURE, "cancel"): Status.CANCELED,
    (Status.REQUIRES_CAPTURE, "expire"): Status.CANCELED,
}


def intent_in(status: Status) -> PaymentIntent:
    return PaymentIntent(
        id="pi_1",
        account_id="acct_1",
        amount_minor=1000,
        currency="usd",
        status=status,
        capture_method=CaptureMethod.AUTOMATIC,
        confirmation_method=ConfirmationMethod.AUTOMATIC,
        client_secret="pi_1_secret_x",
        created_at=T,
        updated_at=T,
        payment_method_id="pm_1",
        amount_capturable_minor=1000 if status is Status.REQUIRES_CAPTURE else 0,
    )


ALL_PAIRS = [(status, name) for status in Status for name in EVENTS]


@pytest.mark.parametrize(("status", "event_name"), ALL_PAIRS)
def test_every_status_and_event_pair_moves_as_documented_or_is_refused(
    status: Status, event_name: str
) -> None:
    intent = intent_in(status)
    expected = LEGAL.get((status, event_name))
    if expected is None:
        with pytest.raises(UnexpectedStateError) as raised:
            transition(intent, EVENTS[event_name])
        assert raised.value.code == "payment_intent_unexpected_state"
        assert raised.value.kind is ErrorKind.FAILED_PRECONDITION
        assert status.value in raised.value.message
    else:
        assert transition(intent, EVENTS[event_name]).status is expected


def test_the_legal_table_and_the_allowed_sources_agree() -> None:
    for (status, name), _ in LEGAL.items():
        assert status in ALLOWED_FROM[type(EVENTS[name])]
    for event_type, sources in ALLOWED_FROM.items():
        names = [n for n, e in EVENTS.items() if type(e) is event_type]
        for status in sources:
            assert any((status, n) in LEGAL for n in names), (status, event_type)


def test_succeeded_and_canceled_are_terminal() -> None:
    """No event moves them; a succeeded intent takes only an annotation, which leaves it
    succeeded, and a canceled one takes nothing at all."""
    for terminal in (Status.SUCCEEDED, Status.CANCELED):
        for name, event in EVENTS.items():
            if (terminal, name) == (Status.SUCCEEDED, "annotate"):
                assert transition(intent_in(terminal), event).status is Status.SUCCEEDED
                continue
            with pytest.raises(UnexpectedStateError):
                transition(intent_in(terminal), event)


@pytest.mark.parametrize("status", [Status.PROCESSING, Status.SUCCEEDED])
def test_an_update_of_only_description_and_metadata_is_an_annotation_once_money_moves(
    status: Status,
) -> None:
    intent = intent_in(status)
    annotated = transition(
        intent, update_event(intent, Updated(at=T, changes={"description": "d"}))
    )
    assert (annotated.status, annotated.description) == (status, "d")
    # Metadata alone is merged by the service: the event itself changes nothing else.
    assert transition(intent, update_event(intent, Updated(at=T))).status is status


@pytest.mark.parametrize(
    "update",
    [
        Updated(at=T, amount_minor=500),
        Updated(at=T, currency="eur"),
        Updated(at=T, payment_method_id="pm_2"),
        Updated(at=T, changes={"description": "d", "receipt_email": "a@b.co"}),
        Updated(at=T, changes={"shipping": None}),
    ],
)
def test_any_other_change_after_success_is_refused_naming_the_status(update: Updated) -> None:
    intent = intent_in(Status.SUCCEEDED)
    with pytest.raises(UnexpectedStateError) as refused:
        transition(intent, update_event(intent, update))
    assert "succeeded" in refused.value.message


def test_a_canceled_intent_refuses_even_an_annotation() -> None:
    intent = intent_in(Status.CANCELED)
    with pytest.raises(UnexpectedStateError):
        transition(intent, update_event(intent, Updated(at=T, changes={"description": "d"})))


def test_an_intent_that_takes_updates_keeps_the_update_event() -> None:
    intent = intent_in(Status.REQUIRES_CONFIRMATION)
    update = Updated(at=T, changes={"description": "d"})
    assert update_event(intent, update) is update


def test_a_decline_clears_the_payment_method_and_records_the_error() -> None:
    after = transition(intent_in(Status.PROCESSING), EVENTS["declined"])
    assert after.payment_method_id is None
    assert after.last_payment_error == {"type": "card_error", "code": "card_declined"}


def test_manual_confirmation_returns_to_requires_confirmation_after_the_action() -> None:
    manual = replace(
        intent_in(Status.REQUIRES_ACTION), confirmation_method=ConfirmationMethod.MANUAL
    )
    assert transition(manual, ActionCompleted(at=T)).status is Status.REQUIRES_CONFIRMATION


def test_an_authorization_without_capture_makes_the_whole_amount_capturable() -> None:
    after = transition(intent_in(Status.PROCESSING), EVENTS["authorized_only"])
    assert (after.amount_capturable_minor, after.amount_received_minor) == (1000, 0)


def test_a_partial_capture_receives_only_what_was_captured() -> None:
    after = transition(intent_in(Status.REQUIRES_CAPTURE), Captured(at=T, amount_minor=600))
    assert (after.status, after.amount_received_minor, after.amount_capturable_minor) == (
        Status.SUCCEEDED,
        600,
        0,
    )


@pytest.mark.parametrize(("amount", "code"), [(0, "amount_too_small"), (1001, "amount_too_large")])
def test_capturing_outside_the_capturable_amount_is_refused(amount: int, code: str) -> None:
    from remit.core.errors import RemitError

    with pytest.raises(RemitError) as raised:
        transition(intent_in(Status.REQUIRES_CAPTURE), Captured(at=T, amount_minor=amount))
    assert raised.value.code == code
    assert raised.value.param == "amount_to_capture"


def test_expiry_cancels_with_reason_expired() -> None:
    after = transition(intent_in(Status.REQUIRES_CAPTURE), EVENTS["expire"])
    assert after.cancellation_reason is CancellationReason.EXPIRED
    assert after.amount_capturable_minor == 0
    assert after.canceled_at == T


def test_changing_the_payment_method_needs_a_new_confirmation() -> None:
    after = transition(intent_in(Status.REQUIRES_ACTION), Updated(at=T, payment_method_id="pm_2"))
    assert (after.status, after.payment_method_id) == (Status.REQUIRES_CONFIRMATION, "pm_2")


@pytest.mark.parametrize(
    "update",
    [
        Updated(at=T, amount_minor=90000),
        Updated(at=T, currency="eur"),
        # The attempt's card was checked against the customer the intent had then.
        Updated(at=T, changes={"customer_id": "cus_other"}),
        # The attempt tells the network whether the card is being set up for later payments.
        Updated(at=T, changes={"setup_future_usage": "off_session"}),
    ],
)
def test_a_new_amount_or_currency_while_an_action_waits_needs_a_new_confirmation(
    update: Updated,
) -> None:
    """The action (a 3-D Secure challenge) was for the old amount, which is what its attempt
    would authorize."""
    waiting = replace(intent_in(Status.REQUIRES_ACTION), next_action={"type": "redirect_to_url"})
    after = transition(waiting, update)
    assert (after.status, after.next_action) == (Status.REQUIRES_CONFIRMATION, None)


def test_the_amount_cannot_change_once_authorized() -> None:
    with pytest.raises(UnexpectedStateError):
        transition(intent_in(Status.REQUIRES_CAPTURE), Updated(at=T, amount_minor=5))


def test_a_confirmation_replaces_keeps_or_clears_the_receipt_email_and_shipping() -> None:
    shipping = {"name": "Jenny Rosen", "address": {"country": "FR"}}
    intent = replace(
        intent_in(Status.REQUIRES_CONFIRMATION), receipt_email="old@example.com", shipping=shipping
    )
    confirm = ConfirmationStarted(at=T, payment_method_id="pm_1", charge_id="ch_1")
    kept = transition(intent, confirm)
    assert (kept.receipt_email, kept.shipping) == ("old@example.com", shipping)
    replaced = transition(intent, replace(confirm, receipt_email="new@example.com"))
    assert (replaced.receipt_email, replaced.shipping) == ("new@example.com", shipping)
    cleared = transition(intent, replace(confirm, clear_receipt_email=True, clear_shipping=True))
    assert (cleared.receipt_email, cleared.shipping) == (None, None)
    only_shipping = transition(intent, replace(confirm, clear_shipping=True))
    assert (only_shipping.receipt_email, only_shipping.shipping) == ("old@example.com", None)


def test_a_confirmation_replaces_keeps_or_clears_setup_future_usage() -> None:
    intent = replace(intent_in(Status.REQUIRES_CONFIRMATION), setup_future_usage="on_session")
    confirm = ConfirmationStarted(at=T, payment_method_id="pm_1", charge_id="ch_1")
    assert transition(intent, confirm).setup_future_usage == "on_session"
    replaced = transition(intent, replace(confirm, setup_future_usage="off_session"))
    assert replaced.setup_future_usage == "off_session"
    cleared = transition(intent, replace(confirm, clear_setup_future_usage=True))
    assert cleared.setup_future_usage is None


def test_what_an_update_leaves_a_waiting_attempt_for_is_named_in_its_message() -> None:
    waiting = intent_in(Status.REQUIRES_ACTION)
    for update, left_by in [
        (Updated(at=T, amount_minor=90000), LeftBy.UPDATED),
        (Updated(at=T, changes={"setup_future_usage": "off_session"}), LeftBy.USAGE_CHANGED),
        (Updated(at=T, changes={"customer_id": "cus_other"}), LeftBy.CUSTOMER_CHANGED),
    ]:
        assert left_by_update(waiting, transition(waiting, update)) is left_by


def test_a_metadata_or_description_update_leaves_the_waiting_action_alone() -> None:
    waiting = replace(intent_in(Status.REQUIRES_ACTION), next_action={"type": "redirect_to_url"})
    after = transition(waiting, Updated(at=T, changes={"description": "Order 12"}))
    assert (after.status, after.next_action) == (Status.REQUIRES_ACTION, waiting.next_action)


@pytest.mark.parametrize(
    "update",
    [
        Updated(at=T),  # a metadata-only update: the service merges the metadata alongside
        Updated(at=T, changes={"description": "retry"}),
        Updated(at=T, amount_minor=1500),
        Updated(at=T, payment_method_id="pm_2"),
    ],
)
def test_any_update_clears_the_last_payment_error(update: Updated) -> None:
    """Stripe: the last payment error "will be cleared if the PaymentIntent is later updated
    for any reason"."""
    declined = transition(intent_in(Status.PROCESSING), EVENTS["declined"])
    assert declined.last_payment_error is not None
    after = transition(declined, update_event(declined, update))
    assert after.last_payment_error is None


def test_an_annotation_clears_the_last_payment_error_too() -> None:
    described = replace(intent_in(Status.SUCCEEDED), last_payment_error={"code": "card_declined"})
    assert transition(described, EVENTS["annotate"]).last_payment_error is None


def test_a_refused_event_carries_the_intent_it_refuses() -> None:
    """Stripe embeds the PaymentIntent in the error; the service presents it."""
    intent = intent_in(Status.SUCCEEDED)
    with pytest.raises(UnexpectedStateError) as refused:
        transition(intent, EVENTS["capture"])
    assert refused.value.related is intent


def test_a_confirmation_keeps_or_replaces_the_requested_three_d_secure() -> None:
    """A confirmation that names none asks for the intent's; its own replaces it."""
    asked = replace(intent_in(Status.REQUIRES_CONFIRMATION), request_three_d_secure="any")
    kept = transition(asked, EVENTS["confirm"])
    assert kept.request_three_d_secure == "any"
    own = ConfirmationStarted(
        at=T, payment_method_id="pm_1", charge_id="ch_1", request_three_d_secure="automatic"
    )
    assert transition(asked, own).request_three_d_secure == "automatic"
