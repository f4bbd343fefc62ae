"""What a PaymentIntent shows a caller holding only a publishable key and its client secret.

A publishable key is public: it sits in web pages and apps. With a PaymentIntent's client secret
it may retrieve and confirm that intent, as Stripe.js does to follow a payment and handle its
next action, and Stripe then returns only a subset of the intent's properties (shared reference
stripe-wire.md §1, and the retrieve operation's description in the OpenAPI document). The
reference does not list the subset; these are the properties Stripe's API reference marks as
retrievable with a publishable key: what a payment page needs, and none of what the merchant
keeps to itself (metadata, the customer, the charges, descriptors, amounts captured).
"""

from collections.abc import Mapping
from typing import Final, cast

from remit.core.jsonview import JsonObject, JsonValue
from remit.rest.errors import StripeError
from remit.rest.params import UNSET

PAYMENT_INTENT_FIELDS: Final = frozenset(
    {
        "id", "object", "amount", "automatic_payment_methods", "canceled_at",
        "cancellation_reason", "capture_method", "client_secret", "confirmation_method",
        "created", "currency", "description", "last_payment_error", "livemode", "next_action",
        "payment_method", "payment_method_types", "processing", "receipt_email",
        "setup_future_usage", "shipping", "status",
        # The same properties under the names versions before 2019-02-11 give them.
        "allowed_source_types", "next_source_action", "source",
    }
)  # fmt: skip

# Stripe.js shows the card a payment used; nothing else may be expanded by a public key.
EXPANDABLE: Final = frozenset({"payment_method"})

# What a payment page sends: the card, where to come back to, the client secret, (to save
# the card during the payment, as Stripe.js lets it) setup_future_usage, and use_stripe_sdk,
# which Stripe.js sends to handle the next action in place.
RETRIEVE_PARAMS: Final = frozenset({"client_secret", "expand"})
CONFIRM_PARAMS: Final = frozenset(
    {
        "client_secret", "expand", "payment_method", "payment_method_data", "return_url",
        "receipt_email", "shipping", "setup_future_usage", "use_stripe_sdk",
    }
)  # fmt: skip
# What Stripe.js sends to make a payment method or a token: the card it collected (raw, or as
# a token), and the payer's details. Never `payment_method`: a copy of a saved card, whose id
# is no secret, would hand its details and its use to whoever holds the public key. `expand`
# is held to EXPANDABLE, as on every publishable request.
PAYMENT_METHOD_CREATE_PARAMS: Final = frozenset(
    {"type", "card", "billing_details", "metadata", "allow_redisplay", "expand"}
)
TOKEN_CREATE_PARAMS: Final = frozenset({"card", "expand"})
# A page may ask for the card to be saved, never undo the merchant's asking for it.
_NOT_CLEARABLE: Final = frozenset({"setup_future_usage"})


def refuse_private_params(params: Mapping[str, object], allowed: frozenset[str]) -> None:
    """A publishable key's request may carry only what a payment page sends: what the
    merchant decides (capture method, off-session use, allowed types) is not the browser's to
    change."""
    for name in sorted(params):
        if name not in allowed or (name in _NOT_CLEARABLE and params[name] is UNSET):
            raise StripeError.invalid_request(
                f"This parameter cannot be set with a publishable API key: {name}.",
                param=name,
            )


def refuse_other_expansions(paths: list[str]) -> None:
    for path in paths:
        if path not in EXPANDABLE:
            raise StripeError.invalid_request(
                f"This property cannot be expanded with a publishable API key ({path}).",
                param="expand",
            )


def publishable_view(intent: Mapping[str, object]) -> JsonObject:
    """The properties of `intent` (a JSON object) a publishable key may see: its payment
    method, expanded or as its last error shows it, included only as `public_payment_method`
    leaves it."""
    view: JsonObject = {
        name: cast(JsonValue, value)
        for name, value in intent.items()
        if name in PAYMENT_INTENT_FIELDS
    }
    if "payment_method" in view:
        view["payment_method"] = public_payment_method(view["payment_method"])
    error = view.get("last_payment_error")
    if isinstance(error, dict):
        view["last_payment_error"] = _public_error(error)
    return view


def public_payment_method(method: JsonValue) -> JsonValue:
    """A PaymentMethod (a JSON object; an id or null is left as it is) as a publishable key
    sees it. The reference does not say what Stripe leaves out of one for a public key; this
    leaves out what ties the card to the merchant's records: the customer it is saved to (and
    its account), the merchant's metadata, and the card's fingerprint, which matches a card
    across payments and customers, and with a public key would tell whoever holds a card
    number whether this merchant has seen it."""
    if not isinstance(method, dict):
        return method
    view: JsonObject = {
        name: value for name, value in method.items() if name not in _PRIVATE_METHOD_FIELDS
    }
    card = view.get("card")
    if isinstance(card, dict):
        view["card"] = _public_card(card)
    return view


def public_object(body: JsonObject) -> JsonObject:
    """What a publishable key's own request answers with (a PaymentMethod or a Token made of
    the card a page collected), as it may see it: no fingerprint. What else a private view
    leaves out is not on such a new object (no customer), or is the page's own (metadata)."""
    if body.get("object") == "payment_method":
        method = public_payment_method(body)
        assert isinstance(method, dict)
        return method
    card = body.get("card")
    if body.get("object") == "token" and isinstance(card, dict):
        return {**body, "card": _public_card(card)}
    return body


def publish_error_intent(body: JsonObject) -> None:
    """Reduce, in place, the PaymentIntent an error body carries (a decline's) to its public
    properties, and its payment method as `public_payment_method` shows it: after rendering,
    so that nothing an older version adds back shows either."""
    error = body.get("error")
    if isinstance(error, dict):
        public = _public_error(error)
        intent = public.get("payment_intent")
        if isinstance(intent, dict):
            public["payment_intent"] = publishable_view(intent)
        body["error"] = public


# What a public view of a PaymentMethod leaves out (see `public_payment_method`).
_PRIVATE_METHOD_FIELDS: Final = frozenset({"customer", "customer_account", "metadata"})
_PRIVATE_CARD_FIELDS: Final = frozenset({"fingerprint", "customer", "metadata"})


def _public_card(card: JsonObject) -> JsonObject:
    return {name: value for name, value in card.items() if name not in _PRIVATE_CARD_FIELDS}


def _public_error(error: JsonObject) -> JsonObject:
    """An error object (a decline's, or an intent's `last_payment_error`) with the payment
    method it names shown as `public_payment_method` shows it (and, at versions that named it
    so, its source)."""
    view = dict(error)
    for name in ("payment_method", "source"):
        if name in view:
            view[name] = public_payment_method(view[name])
    return view
