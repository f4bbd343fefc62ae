import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import render, render_event
from remit.versioning.previous_attributes import changed_attributes
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions import LATEST_VERSION
from versions.v2025_03_31 import RenameExpiredCancellationReason, RenderReleasedAmountsAsRefunded

AT = "2025-03-31.basil"
BEFORE = version_before(AT)


def _charge(*, captured: int | None, refunded: int = 0, released: bool = False) -> JsonObject:
    """A charge of 2000: captured (in part) when `captured` is set, else only authorized."""
    message = resources.charge()
    message.captured = captured is not None
    message.amount_captured = captured or 0
    message.amount_refunded = refunded
    message.refunded = captured is not None and refunded >= captured
    message.authorization_released = released
    body = to_json(message)
    body.pop("refunds")  # left out unless expanded
    return body


def _expired_intent() -> JsonObject:
    intent = resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_CANCELED)
    intent.cancellation_reason = pb.PAYMENT_INTENT_CANCELLATION_REASON_EXPIRED
    return to_json(intent)


def test_an_intent_canceled_by_expiry_says_automatic_before_basil() -> None:
    assert RenameExpiredCancellationReason.version == AT
    intent = _expired_intent()
    difference = top_level_difference(render(intent, BEFORE), render(intent, AT))
    assert difference.pop("cancellation_reason") == ("automatic", "expired")
    assert difference == {"invoice": (None, "<absent>")}


def test_reasons_given_by_the_merchant_are_the_same_before_basil() -> None:
    intent = resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_CANCELED)
    intent.cancellation_reason = pb.PAYMENT_INTENT_CANCELLATION_REASON_DUPLICATE
    assert render(to_json(intent), BEFORE)["cancellation_reason"] == "duplicate"


def test_the_remainder_of_a_partial_capture_is_refunded_before_basil() -> None:
    assert RenderReleasedAmountsAsRefunded.version == AT
    charge = _charge(captured=1200)
    difference = top_level_difference(render(charge, BEFORE), render(charge, AT))
    assert difference.pop("amount_refunded") == (800, 0)
    assert difference == {"invoice": (None, "<absent>")}
    assert render(charge, BEFORE)["refunded"] is False


def test_a_partially_captured_charge_refunded_in_full_is_refunded_at_both_versions() -> None:
    charge = _charge(captured=1200, refunded=1200)
    before, at = render(charge, BEFORE), render(charge, AT)
    assert (before["amount_refunded"], before["refunded"]) == (2000, True)
    assert (at["amount_refunded"], at["refunded"]) == (1200, True)


def test_a_released_authorization_is_refunded_in_full_before_basil() -> None:
    charge = _charge(captured=None, released=True)
    difference = top_level_difference(render(charge, BEFORE), render(charge, AT))
    assert difference == {
        "amount_refunded": (2000, 0),
        "refunded": (True, False),
        "invoice": (None, "<absent>"),
    }


def test_an_authorization_still_held_is_not_refunded_at_any_version() -> None:
    charge = _charge(captured=None)
    before = render(charge, BEFORE)
    assert (before["amount_refunded"], before["refunded"], before["captured"]) == (0, False, False)


def test_a_charge_captured_in_full_is_unchanged_but_for_its_invoice() -> None:
    charge = _charge(captured=2000, refunded=500)
    difference = top_level_difference(render(charge, BEFORE), render(charge, AT))
    assert difference == {"invoice": (None, "<absent>")}


def test_whether_an_authorization_was_released_is_never_shown() -> None:
    charge = _charge(captured=None, released=True)
    assert charge["authorization_released"] is True  # what the changes read
    for version in (LATEST_VERSION, AT, BEFORE, "2014-06-13"):
        assert "authorization_released" not in render(charge, version, resources.related_lists())
    assert "authorization_released" in charge  # the caller's body is left as it was


def test_an_event_shows_the_release_at_old_versions_and_never_the_internal_field() -> None:
    charge = _charge(captured=None, released=True)
    previous: JsonObject = {"authorization_released": False, "description": "first try"}
    event = to_json(
        resources.event(charge, previous_attributes=previous, event_type="charge.updated")
    )
    for version in (LATEST_VERSION, BEFORE):
        data = render_event(event, version)["data"]
        assert isinstance(data, dict)
        # Before basil the release was a refund: the amounts it changed changed with it.
        assert data["previous_attributes"] == (
            {"description": "first try", "amount_refunded": 0, "refunded": False}
            if version == BEFORE
            else {"description": "first try"}
        )
        shown = data["object"]
        assert isinstance(shown, dict)
        assert "authorization_released" not in shown
        assert shown["amount_refunded"] == (2000 if version == BEFORE else 0)


def test_a_body_without_internal_fields_comes_back_as_it_was_at_the_latest_version() -> None:
    refund = to_json(resources.refund())
    assert render(refund, LATEST_VERSION) is refund


@pytest.mark.parametrize("version", [BEFORE, "2024-06-20", "2022-08-01", "2014-06-13"])
def test_a_partial_capture_event_before_basil_says_the_remainder_was_not_refunded_before(
    version: str,
) -> None:
    """The remainder released by the capture counts as refunded before basil, so the event
    shows `amount_refunded` changed too, from 0: previous_attributes are the difference
    between the charge before and after, both as the version shows them."""
    held, captured = _charge(captured=None), _charge(captured=1200)
    event = to_json(
        resources.event(
            captured,
            previous_attributes=changed_attributes(held, captured),
            event_type="charge.captured",
        )
    )
    data = render_event(event, version, resources.related_lists())["data"]
    assert isinstance(data, dict)
    shown = data["object"]
    assert isinstance(shown, dict)
    assert (shown["amount_captured"], shown["amount_refunded"]) == (1200, 800)
    assert data["previous_attributes"] == {
        "amount_captured": 0,
        "amount_refunded": 0,
        "captured": False,
    }
    latest = render_event(event, LATEST_VERSION)["data"]
    assert isinstance(latest, dict)
    assert latest["previous_attributes"] == {"amount_captured": 0, "captured": False}
