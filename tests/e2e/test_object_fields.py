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
from typing import Any, Final

import httpx
import pytest
import stripe

from tests.support.accounts import TestAccount
from tests.support.http import ok
from tests.support.platform import RunningPlatform

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

    payment_method = get(f"/v1/payment_methods/{method.id}")
    payout = client.v1.payouts.create(params={"amount": 100, "currency": "usd"})
    token = get("/v1/tokens/tok_visa")
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": "https://shop.example/hooks", "enabled_events": ["*"]}
    )
    transactions: list[dict[str, Any]] = get("/v1/balance_transactions")["data"]
    events: list[dict[str, Any]] = get("/v1/events")["data"]
    gone = client.v1.customers.create()
    return {
        "payment_intent": get(f"/v1/payment_intents/{intent.id}"),
        "charge": get(f"/v1/charges/{intent.latest_charge}"),
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
    assert rendered["payment_intent"]["amount_details"] == {"tip": {"amount": None}}
    assert rendered["balance"]["connect_reserved"] == [{"amount": 0, "currency": "usd"}]
