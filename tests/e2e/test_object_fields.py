"""Every object carries each field Stripe's SDK knows of, null where remit has nothing to say.

stripe-python raises AttributeError for a key missing from the JSON where Stripe's has null, so a
field left out breaks integrations that read it. The field sets come from the SDK itself (its
class annotations) and from Stripe's published example objects; the fields the SDK knows and
remit does not render are listed below, each with the reason Stripe's JSON lacks them too.
Every resource remit serves that Stripe publishes an example of is rendered here: one left out
is one whose missing fields nobody sees (a payout's application_fee, the balance's
connect_reserved went unnoticed that way).
"""

import typing
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform
from tests.support.waiting import wait_for

RETURN_URL: Final = "https://shop.example/return"

# The keys of Stripe's example objects (openapi/fixtures3.json, 2026-07-29), which Stripe's
# JSON always has. A charge's `refunds` is there too, but Stripe renders it only when expanded
# since 2022-11-15, as remit does.
STRIPE_EXAMPLE_KEYS: Final = {
    "payment_intent": {
        "amount", "amount_capturable", "amount_details", "amount_received", "application",
        "application_fee_amount", "automatic_payment_methods", "canceled_at",
        "cancellation_reason", "capture_method", "client_secret", "confirmation_method",
        "created", "currency", "customer", "customer_account", "description",
        "excluded_payment_method_types", "id", "last_payment_error", "latest_charge",
        "livemode", "managed_payments", "metadata", "next_action", "object", "on_behalf_of",
        "payment_method", "payment_method_configuration_details", "payment_method_options",
        "payment_method_types", "processing", "receipt_email", "review", "setup_future_usage",
        "shipping", "source", "statement_descriptor", "statement_descriptor_suffix", "status",
        "transfer_data", "transfer_group",
    },
    "charge": {
        "amount", "amount_captured", "amount_refunded", "application", "application_fee",
        "application_fee_amount", "balance_transaction", "billing_details",
        "calculated_statement_descriptor", "captured", "created", "currency", "customer",
        "description", "disputed", "failure_balance_transaction", "failure_code",
        "failure_message", "fraud_details", "id", "livemode", "metadata", "object",
        "on_behalf_of", "outcome", "paid", "payment_intent", "payment_method",
        "payment_method_details", "receipt_email", "receipt_number", "receipt_url", "refunded",
        "review", "shipping", "source", "source_transfer", "statement_descriptor",
        "statement_descriptor_suffix", "status", "transfer_data", "transfer_group",
    },
    "refund": {
        "amount", "balance_transaction", "charge", "created", "currency", "customer",
        "customer_account", "destination_details", "id", "metadata", "object", "payment_intent",
        "payment_method", "reason", "receipt_number", "source_transfer_reversal", "status",
        "transfer_reversal",
    },
    "customer": {
        "address", "balance", "created", "currency", "default_source", "delinquent",
        "description", "discount", "email", "id", "invoice_prefix", "invoice_settings",
        "livemode", "metadata", "name", "next_invoice_sequence", "object", "phone",
        "preferred_locales", "shipping", "tax_exempt", "test_clock",
    },
    "payment_method": {
        "allow_redisplay", "billing_details", "card", "created", "customer", "customer_account",
        "id", "livemode", "metadata", "object", "type",
    },
    "payment_method.card": {
        "brand", "checks", "country", "display_brand", "exp_month", "exp_year", "fingerprint",
        "funding", "generated_from", "last4", "networks", "regulated_status",
        "three_d_secure_usage", "wallet",
    },
    "deleted_customer": {"deleted", "id", "object"},
    "balance": {"available", "connect_reserved", "livemode", "object", "pending"},
    "balance_transaction": {
        "amount", "available_on", "balance_type", "created", "currency", "description",
        "exchange_rate", "fee", "fee_details", "id", "net", "object", "reporting_category",
        "source", "status", "type",
    },
    "payout": {
        "amount", "application_fee", "application_fee_amount", "arrival_date", "automatic",
        "balance_transaction", "created", "currency", "description", "destination",
        "failure_balance_transaction", "failure_code", "failure_message", "id", "livemode",
        "metadata", "method", "object", "original_payout", "payout_method",
        "reconciliation_status", "reversed_by", "source_type", "statement_descriptor", "status",
        "trace_id", "type",
    },
    "token": {"card", "client_ip", "created", "id", "livemode", "object", "type", "used"},
    # The card of the token example (the `card` example is a customer's saved card source).
    "token.card": {
        "address_city", "address_country", "address_line1", "address_line1_check",
        "address_line2", "address_state", "address_zip", "address_zip_check", "brand", "country",
        "cvc_check", "dynamic_last4", "exp_month", "exp_year", "fingerprint", "funding", "id",
        "last4", "metadata", "name", "networks", "object", "regulated_status",
        "tokenization_method",
    },
    "event": {
        "api_version", "created", "data", "id", "livemode", "object", "pending_webhooks",
        "request", "type",
    },
    "webhook_endpoint": {
        "api_version", "application", "created", "description", "enabled_events", "id",
        "livemode", "metadata", "object", "status", "url",
    },
    "deleted_webhook_endpoint": {"deleted", "id", "object"},
}  # fmt: skip
"""Every resource of Stripe's examples that remit serves. The examples' `transfer`,
`transfer_reversal`, `account`, `application_fee` and `card` (a saved card source) are
objects remit has no endpoint for."""

# The keys of every object nested in those examples, by path (`[]`: each element of a list),
# so that a key missing deep down (a charge's `payment_method_details.card.wallet`) fails as
# one missing at the top does. Left out: hashes of the merchant's own keys (`metadata`),
# the charge's `refunds` (see above) and its `source` (a legacy card source, never set on
# charges made by PaymentIntents), and the event's `data.object`, which is a Billing plan.
STRIPE_EXAMPLE_NESTED_KEYS: Final = {
    "payment_intent.amount_details": {"tip"},
    "payment_intent.automatic_payment_methods": {"enabled"},
    "payment_intent.last_payment_error": {"type"},
    "payment_intent.next_action": {"type"},
    "payment_intent.payment_method_configuration_details": {"id", "parent"},
    "payment_intent.processing": {"type"},
    "payment_intent.transfer_data": {"destination"},
    "payment_intent.transfer_data.destination": {"id", "object"},
    "payment_intent.managed_payments": {"enabled"},
    "charge.billing_details": {"address", "email", "name", "phone", "tax_id"},
    "charge.billing_details.address": {
        "city", "country", "line1", "line2", "postal_code", "state",
    },
    "charge.outcome": {
        "advice_code", "network_advice_code", "network_decline_code", "network_status",
        "reason", "seller_message", "type",
    },
    "charge.payment_method_details": {"card", "type"},
    "charge.payment_method_details.card": {
        "amount_authorized", "authorization_code", "brand", "checks", "country", "exp_month",
        "exp_year", "extended_authorization", "fingerprint", "funding",
        "incremental_authorization", "installments", "last4", "mandate", "multicapture",
        "network", "network_token", "network_transaction_id", "overcapture", "regulated_status",
        "three_d_secure", "transaction_link_id", "wallet",
    },
    "charge.payment_method_details.card.checks": {
        "address_line1_check", "address_postal_code_check", "cvc_check",
    },
    "charge.payment_method_details.card.extended_authorization": {"status"},
    "charge.payment_method_details.card.incremental_authorization": {"status"},
    "charge.payment_method_details.card.installments": {"plan"},
    "charge.payment_method_details.card.installments.plan": {"count", "interval", "type"},
    "charge.payment_method_details.card.multicapture": {"status"},
    "charge.payment_method_details.card.network_token": {"used"},
    "charge.payment_method_details.card.overcapture": {"maximum_amount_capturable", "status"},
    "charge.payment_method_details.card.three_d_secure": {
        "authentication_flow", "electronic_commerce_indicator", "exemption_indicator", "result",
        "result_reason", "transaction_id", "version",
    },
    "charge.payment_method_details.card.wallet": {"dynamic_last4", "type"},
    "charge.transfer_data": {"amount", "destination"},
    "charge.transfer_data.destination": {"id", "object"},
    "refund.destination_details": {"card", "type"},
    "refund.destination_details.card": {"type"},
    "payment_method.billing_details": {"address", "email", "name", "phone", "tax_id"},
    "payment_method.billing_details.address": {
        "city", "country", "line1", "line2", "postal_code", "state",
    },
    "payment_method.card.checks": {
        "address_line1_check", "address_postal_code_check", "cvc_check",
    },
    "payment_method.card.generated_from": {"charge", "payment_method_details", "setup_attempt"},
    "payment_method.card.generated_from.payment_method_details": {"type"},
    "payment_method.card.networks": {"available", "preferred"},
    "payment_method.card.three_d_secure_usage": {"supported"},
    "payment_method.card.wallet": {"dynamic_last4", "type"},
    "customer.address": {"city", "country", "line1", "line2", "postal_code", "state"},
    "customer.discount": {
        "checkout_session", "customer", "customer_account", "end", "id", "invoice",
        "invoice_item", "object", "promotion_code", "source", "start", "subscription",
        "subscription_item",
    },
    "customer.discount.source": {"coupon", "type"},
    "customer.invoice_settings": {
        "custom_fields", "default_payment_method", "footer", "rendering_options",
    },
    "customer.invoice_settings.rendering_options": {"amount_tax_display", "template"},
    "event.data": {"object"},
    "event.request": {"id", "idempotency_key"},
    "balance.available[]": {"amount", "currency", "source_types"},
    "balance.available[].source_types": {"card"},
    "balance.connect_reserved[]": {"amount", "currency"},
    "balance.pending[]": {"amount", "currency", "source_types"},
    "balance.pending[].source_types": {"card"},
    "payout.trace_id": {"status", "value"},
    "token.card.networks": {"preferred"},
    # The example's empty hashes (`{}`): objects all the same, never null (shipping aside).
    "payment_intent.amount_details.tip": set(),
    "payment_intent.payment_method_options": set(),
    "payment_intent.shipping": set(),
    "charge.fraud_details": set(),
    "charge.shipping": set(),
    "customer.shipping": set(),
}  # fmt: skip

# Where Stripe's example has an object and remit renders null, as Stripe does when the object
# does not apply: the intent's error, action, processing state and configuration details (none
# for a paid intent, which has no payment method configuration in remit), Connect transfer and
# Managed Payments settings (an intent not using it); a charge's Connect transfer, wallet and
# installments (plain cards, no plans); a saved card made from no other payment method and from
# no wallet; a customer's discount (remit has no coupons) and invoice rendering options (no
# invoices); the address of a customer given none.
MAY_BE_NULL: Final = frozenset({
    "payment_intent.last_payment_error",
    "payment_intent.next_action",
    "payment_intent.payment_method_configuration_details",
    "payment_intent.processing",
    "payment_intent.transfer_data",
    "payment_intent.managed_payments",
    "charge.transfer_data",
    "charge.payment_method_details.card.installments",
    "charge.payment_method_details.card.wallet",
    "payment_method.card.generated_from",
    "payment_method.card.wallet",
    "customer.address",
    "customer.discount",
    "customer.invoice_settings.rendering_options",
    # Only once 3-D Secure ran: the charge paid after a challenge has it (`rendered`).
    "charge.payment_method_details.card.three_d_secure",
    # Only when shipping was given (Stripe's spec: nullable); these objects were given none.
    "payment_intent.shipping",
    "charge.shipping",
    "customer.shipping",
})  # fmt: skip

# The keys remit shows beyond those of Stripe's example object, at the paths whose key sets are
# pinned exactly (each example key set, plus these, is all there is). Stripe's examples leave
# out optional fields; each of these is a field of stripe-python 16.1.0's class for the object.
KEYS_BEYOND_STRIPE_EXAMPLE: Final[dict[str, set[str]]] = {
    # The types the merchant allowed (dahlia); null when it named none.
    "payment_intent": {"allowed_payment_method_types"},
    "payment_intent.amount_details": set(),
    "payment_intent.amount_details.tip": set(),
    # The issuer's authorization code, newer than the example's field set: null, as on the
    # card of `payment_method_details`, where remit keeps none either.
    "charge": {"authorization_code"},
    # Radar's judgement of the charge, which the example (no Radar) leaves out.
    "charge.outcome": {"risk_level", "risk_score", "rule"},
    # When an uncaptured authorization expires; null once captured.
    "charge.payment_method_details.card": {"capture_before"},
    # A refund's failure, pending reason, description and instructions: null for a card
    # refund that succeeded.
    "refund": {
        "description", "failure_balance_transaction", "failure_reason", "instructions_email",
        "next_action", "pending_reason",
    },
    # The customer's business and individual names, and its v2 Account (null in remit).
    "customer": {"business_name", "customer_account", "individual_name"},
    "payment_method": set(),
    "payment_method.card": set(),
    "deleted_customer": set(),
    "balance": set(),
    "balance_transaction": set(),
    "payout": set(),
    "token": set(),
    "token.card": set(),
    "event": set(),
    "webhook_endpoint": set(),
    "deleted_webhook_endpoint": set(),
}  # fmt: skip

# Objects rendered besides one of each kind, and the example each is compared with.
EXAMPLE_OF: Final = {"charge (3-D Secure)": "charge"}

_ADAPTIVE_PRICING: Final = "presentment_details"  # only with Adaptive Pricing (currency shown)


def _payment_method_type_objects() -> set[str]:
    """A PaymentMethod has one sub-object per type, and Stripe renders only its own type's."""
    literal, *_ = typing.get_args(stripe.PaymentMethod.__annotations__["type"])
    return set(typing.get_args(literal)) - {"card"}


# Fields of the SDK that remit does not render, and why Stripe's JSON would not have them.
NOT_RENDERED: Final[dict[str, set[str]]] = {
    # Shown only for intents using those features: hooks, industry payment details, Payment
    # Records, Adaptive Pricing; remit has none.
    "payment_intent": {"hooks", "payment_details", "payment_record", _ADAPTIVE_PRICING},
    # level3 only when sent with the charge; radar_options only when a Radar session was given;
    # transfer only on destination charges; refunds only when expanded (since 2022-11-15).
    "charge": {"level3", "radar_options", "transfer", "refunds", _ADAPTIVE_PRICING},
    "refund": {_ADAPTIVE_PRICING},
    # Includable only (expand[]) in Stripe, and remit has no billing to fill them; `deleted` is
    # on the deleted stub alone.
    "customer": {
        "cash_balance",
        "invoice_credit_balance",
        "sources",
        "subscriptions",
        "tax",
        "tax_ids",
        "deleted",
    },
    # radar_options only when a Radar session was given.
    "payment_method": {"radar_options"} | _payment_method_type_objects(),
    # Issuing-only fields, not in standard API answers.
    "payment_method.card": {"description", "iin", "issuer"},
    # Shown only to accounts with Instant Payouts, Issuing, or refund and dispute prefunding.
    "balance": {"instant_available", "issuing", "refund_and_dispute_prefunding"},
    "balance_transaction": set(),
    "payout": set(),
    # bank_account only on a bank account's token.
    "token": {"bank_account"},
    # A token's card belongs to no customer or account, so it has none of their fields
    # (`customer`, `deleted`, an external account's `account`, `allow_redisplay`,
    # `available_payout_methods`, `currency`, `default_for_currency`, `status`), nor the
    # Issuing-only ones.
    "token.card": {
        "account",
        "allow_redisplay",
        "available_payout_methods",
        "currency",
        "customer",
        "default_for_currency",
        "deleted",
        "description",
        "iin",
        "issuer",
        "status",
    },
    # account only on a connected account's events; context only on events fetched on behalf
    # of another account.
    "event": {"account", "context"},
    # deleted on the deleted stub alone; secret only in the answer of the create (and a roll),
    # absent, not null, from every other.
    "webhook_endpoint": {"deleted", "secret"},
    "dispute": set(),
    "dispute.evidence": set(),
    "dispute.evidence_details": set(),
    # One hash per payment method type, and Stripe renders only its own type's (a card).
    "dispute.payment_method_details": {"amazon_pay", "klarna", "paypal"},
    "dispute.payment_method_details.card": set(),
}

SDK_CLASSES: Final[dict[str, Any]] = {
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "customer": stripe.Customer,
    "payment_method": stripe.PaymentMethod,
    "payment_method.card": stripe.PaymentMethod.Card,
    "balance": stripe.Balance,
    "balance_transaction": stripe.BalanceTransaction,
    "payout": stripe.Payout,
    "token": stripe.Token,
    "token.card": stripe.Card,
    "event": stripe.Event,
    "webhook_endpoint": stripe.WebhookEndpoint,
    "dispute": stripe.Dispute,
    "dispute.evidence": stripe.Dispute.Evidence,
    "dispute.evidence_details": stripe.Dispute.EvidenceDetails,
    "dispute.payment_method_details": stripe.Dispute.PaymentMethodDetails,
    "dispute.payment_method_details.card": stripe.Dispute.PaymentMethodDetails.Card,
}


def _sdk_fields(name: str) -> set[str]:
    return set(SDK_CLASSES[name].__annotations__) - {"OBJECT_NAME"}


def _paid(client: stripe.StripeClient, **params: Any) -> stripe.PaymentIntent:
    return client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "confirm": True,
            "return_url": RETURN_URL,
            **params,  # type: ignore[typeddict-item]
        }
    )


@pytest.fixture
def rendered(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> dict[str, dict[str, Any]]:
    """One object of each kind, as GET answers it (raw JSON, keys and all)."""
    # Funds available at once, for a payout.
    _paid(client, payment_method="pm_card_bypassPending")
    customer = client.v1.customers.create(params={"payment_method": "pm_card_visa"})
    [method] = client.v1.payment_methods.list(params={"customer": customer.id}).data
    intent = client.v1.payment_intents.create(
        params={
            "amount": 2000,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "return_url": RETURN_URL,
        }
    )
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500})
    headers = {"Authorization": f"Bearer {account.secret_key}"}

    def get(path: str) -> dict[str, Any]:
        body: dict[str, Any] = ok(httpx.get(f"{platform.api_base}{path}", headers=headers))
        return body

    def delete(path: str) -> dict[str, Any]:
        body: dict[str, Any] = ok(httpx.delete(f"{platform.api_base}{path}", headers=headers))
        return body

    challenged = _paid(client, payment_method="pm_card_authenticationRequired")
    action = challenged.next_action
    assert action is not None
    assert action.redirect_to_url is not None
    challenge = str(action.redirect_to_url.url)
    assert httpx.post(challenge, data={"outcome": "succeed"}).status_code == 303
    authenticated = client.v1.payment_intents.retrieve(challenged.id)
    payment_method = get(f"/v1/payment_methods/{method.id}")
    payout = client.v1.payouts.create(params={"amount": 100, "currency": "usd"})
    token = get("/v1/tokens/tok_visa")
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "https://shop.example/hooks", "enabled_events": ["*"]}
    )
    transactions: list[dict[str, Any]] = get("/v1/balance_transactions")["data"]
    events: list[dict[str, Any]] = get("/v1/events")["data"]
    gone = client.v1.customers.create()
    disputed = _paid(client, payment_method="pm_card_createDispute")
    disputes: list[dict[str, Any]] = []

    def dispute_opened() -> bool:
        disputes[:] = get(f"/v1/disputes?charge={disputed.latest_charge}")["data"]
        return bool(disputes)

    wait_for(dispute_opened, 30, lambda: "the worker opened no dispute")
    (dispute,) = disputes
    return {
        "payment_intent": get(f"/v1/payment_intents/{intent.id}"),
        "charge": get(f"/v1/charges/{intent.latest_charge}"),
        "charge (3-D Secure)": get(f"/v1/charges/{authenticated.latest_charge}"),
        "refund": get(f"/v1/refunds/{refund.id}"),
        "customer": get(f"/v1/customers/{customer.id}"),
        "payment_method": payment_method,
        "payment_method.card": payment_method["card"],
        "deleted_customer": delete(f"/v1/customers/{gone.id}"),
        "balance": get("/v1/balance"),
        "balance_transaction": transactions[0],
        "payout": get(f"/v1/payouts/{payout.id}"),
        "token": token,
        "token.card": token["card"],
        "event": events[0],
        "webhook_endpoint": get(f"/v1/webhook_endpoints/{endpoint.id}"),
        "deleted_webhook_endpoint": delete(f"/v1/webhook_endpoints/{endpoint.id}"),
        "dispute": dispute,
        "dispute.evidence": dispute["evidence"],
        "dispute.evidence_details": dispute["evidence_details"],
        "dispute.payment_method_details": dispute["payment_method_details"],
        "dispute.payment_method_details.card": dispute["payment_method_details"]["card"],
    }


@pytest.mark.parametrize("name", sorted(SDK_CLASSES))
def test_an_object_has_every_field_of_the_sdk_but_those_stripe_leaves_out(
    rendered: dict[str, dict[str, Any]], name: str
) -> None:
    assert set(rendered[name]) == _sdk_fields(name) - NOT_RENDERED[name]


@pytest.mark.parametrize("name", sorted(STRIPE_EXAMPLE_KEYS))
def test_an_object_has_every_key_of_stripes_example(
    rendered: dict[str, dict[str, Any]], name: str
) -> None:
    assert STRIPE_EXAMPLE_KEYS[name] - set(rendered[name]) == set()


def _found_at(value: Any, segments: list[str]) -> Iterator[Any]:
    """The values at a path of `value` (`name[]`: each element of the list `name`), those
    under a null left out: the null is checked at its own path."""
    if not segments:
        yield value
        return
    if not isinstance(value, dict):
        return
    head, rest = segments[0], segments[1:]
    child = value.get(head.removesuffix("[]"))
    for item in (child or []) if head.endswith("[]") else [child]:
        yield from _found_at(item, rest)


@pytest.mark.parametrize("name", sorted({*STRIPE_EXAMPLE_KEYS, *EXAMPLE_OF}))
def test_every_nested_object_has_every_key_of_stripes_example(
    rendered: dict[str, dict[str, Any]], name: str
) -> None:
    example = EXAMPLE_OF.get(name, name)
    lacking: dict[str, set[str] | None] = {}
    for path, keys in STRIPE_EXAMPLE_NESTED_KEYS.items():
        resource, _, inside = path.partition(".")
        if resource != example:
            continue
        for value in _found_at(rendered[name], inside.split(".")):
            if value is None:
                if path not in MAY_BE_NULL:
                    lacking[path] = None
            elif missing := keys - set(value):
                lacking[path] = missing
    assert lacking == {}


def _example_keys(path: str) -> set[str]:
    keys = STRIPE_EXAMPLE_KEYS.get(path)
    return set(STRIPE_EXAMPLE_NESTED_KEYS[path] if keys is None else keys)


@pytest.mark.parametrize("path", sorted(KEYS_BEYOND_STRIPE_EXAMPLE))
def test_an_objects_keys_are_those_of_stripes_example_and_the_extras_named(
    rendered: dict[str, dict[str, Any]], path: str
) -> None:
    """The key set is pinned both ways: a key of Stripe's example that goes missing fails, and
    so does one that appears without being named above (with why Stripe has it too)."""
    name, _, inside = path.partition(".")
    (value,) = _found_at(rendered[name], inside.split(".")) if inside else [rendered[name]]
    assert isinstance(value, dict)
    assert set(value) == _example_keys(path) | KEYS_BEYOND_STRIPE_EXAMPLE[path]


def test_a_card_charge_shows_the_authorization_features_it_has_none_of(
    rendered: dict[str, dict[str, Any]],
) -> None:
    """As Stripe shows them for a card with none of them, so that merchant code reading
    `card.overcapture.status` finds them on every card charge."""
    card = rendered["charge"]["payment_method_details"]["card"]
    assert {name: card[name] for name in ("extended_authorization", "incremental_authorization",
            "multicapture", "network_token", "overcapture")} == {
        "extended_authorization": {"status": "disabled"},
        "incremental_authorization": {"status": "unavailable"},
        "multicapture": {"status": "unavailable"},
        "network_token": {"used": False},
        "overcapture": {"maximum_amount_capturable": 2000, "status": "unavailable"},
    }  # fmt: skip
    fields = ("authorization_code", "installments", "mandate", "regulated_status",
              "transaction_link_id", "wallet")  # fmt: skip
    assert {field: card[field] for field in fields} == dict.fromkeys(fields)
    secure = rendered["charge (3-D Secure)"]["payment_method_details"]["card"]["three_d_secure"]
    assert (secure["result"], secure["exemption_indicator"]) == ("authenticated", None)


def test_a_card_refund_says_it_goes_back_to_the_card(
    rendered: dict[str, dict[str, Any]],
) -> None:
    assert rendered["refund"]["destination_details"] == {
        "type": "card",
        "card": {
            "reference": None,
            "reference_status": None,
            "reference_type": None,
            "type": "refund",
        },
    }


def test_fields_for_features_remit_lacks_render_null(
    rendered: dict[str, dict[str, Any]],
) -> None:
    nulls = {
        "payment_intent": ("transfer_data", "transfer_group", "source", "customer_account"),
        "charge": ("application_fee", "source", "source_transfer", "transfer_data"),
        "refund": ("transfer_reversal", "source_transfer_reversal", "next_action"),
        "customer": ("default_source", "discount", "invoice_prefix", "test_clock"),
        "payment_method.card": ("generated_from", "regulated_status"),
        "payout": ("application_fee", "application_fee_amount", "payout_method"),
    }
    for name, fields in nulls.items():
        assert {field: rendered[name][field] for field in fields} == dict.fromkeys(fields)
    # Hashes whose fields Stripe's spec never makes null: empty, as in Stripe's examples.
    assert rendered["payment_intent"]["amount_details"] == {"tip": {}}
    assert rendered["charge"]["fraud_details"] == {}
    assert rendered["customer"]["next_invoice_sequence"] == 1  # no invoices yet: the first
    assert rendered["balance"]["connect_reserved"] == [{"amount": 0, "currency": "usd"}]
