"""What a publishable key sees of the payment method an intent, a decline or its own request
shows: never the customer it is saved to, the merchant's metadata or the card's fingerprint."""

from remit.core.jsonview import JsonObject
from remit.rest.publishable import public_object, publish_error_intent, publishable_view


def _method() -> JsonObject:
    return {
        "id": "pm_1",
        "object": "payment_method",
        "customer": "cus_1",
        "customer_account": "acct_1",
        "metadata": {"note": "watch"},
        "card": {"brand": "visa", "last4": "4242", "fingerprint": "fp_1"},
    }


_PUBLIC_METHOD: JsonObject = {
    "id": "pm_1",
    "object": "payment_method",
    "card": {"brand": "visa", "last4": "4242"},
}


def test_an_intent_shows_its_expanded_payment_method_and_its_last_errors_publicly() -> None:
    intent: JsonObject = {
        "id": "pi_1",
        "metadata": {"order": "1"},
        "payment_method": _method(),
        "last_payment_error": {"code": "card_declined", "payment_method": _method()},
    }
    assert publishable_view(intent) == {
        "id": "pi_1",
        "payment_method": _PUBLIC_METHOD,
        "last_payment_error": {"code": "card_declined", "payment_method": _PUBLIC_METHOD},
    }


def test_an_unexpanded_or_absent_payment_method_is_left_as_it_is() -> None:
    assert publishable_view({"id": "pi_1", "payment_method": "pm_1"})["payment_method"] == "pm_1"
    assert "payment_method" not in publishable_view({"id": "pi_1"})
    assert publishable_view({"id": "pi_1", "payment_method": None})["payment_method"] is None


def test_a_decline_shows_its_payment_method_publicly_at_old_versions_too() -> None:
    body: JsonObject = {
        "error": {
            "type": "card_error",
            "payment_method": _method(),
            "source": _method(),
            "payment_intent": {"id": "pi_1", "customer": "cus_1", "payment_method": _method()},
        }
    }
    publish_error_intent(body)
    assert body == {
        "error": {
            "type": "card_error",
            "payment_method": _PUBLIC_METHOD,
            "source": _PUBLIC_METHOD,
            "payment_intent": {"id": "pi_1", "payment_method": _PUBLIC_METHOD},
        }
    }


def test_a_pages_own_payment_method_and_token_show_no_fingerprint() -> None:
    assert public_object(_method()) == _PUBLIC_METHOD
    token: JsonObject = {
        "id": "tok_1",
        "object": "token",
        "card": {"last4": "4242", "fingerprint": "fp_1"},
    }
    assert public_object(token) == {"id": "tok_1", "object": "token", "card": {"last4": "4242"}}
