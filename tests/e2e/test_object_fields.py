"""Every object carries each field Stripe's SDK knows of, null where remit has nothing to say.

stripe-python raises AttributeError for a key missing from the JSON where Stripe's has null, so a
field left out breaks integrations that read it. The field sets come from the SDK itself (its
class annotations) and from Stripe's published example objects; the fields the SDK knows and
remit does not render are listed below, each with the reason Stripe's JSON lacks them too.
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
}  # fmt: skip

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
}

SDK_CLASSES: Final[dict[str, Any]] = {
    "payment_intent": stripe.PaymentIntent,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "customer": stripe.Customer,
    "payment_method": stripe.PaymentMethod,
    "payment_method.card": stripe.PaymentMethod.Card,
}


def _sdk_fields(name: str) -> set[str]:
    return set(SDK_CLASSES[name].__annotations__) - {"OBJECT_NAME"}


@pytest.fixture
def rendered(
    platform: RunningPlatform, account: TestAccount, client: stripe.StripeClient
) -> dict[str, dict[str, Any]]:
    """One object of each kind, as GET answers it (raw JSON, keys and all)."""
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

    payment_method = get(f"/v1/payment_methods/{method.id}")
    return {
        "payment_intent": get(f"/v1/payment_intents/{intent.id}"),
        "charge": get(f"/v1/charges/{intent.latest_charge}"),
        "refund": get(f"/v1/refunds/{refund.id}"),
        "customer": get(f"/v1/customers/{customer.id}"),
        "payment_method": payment_method,
        "payment_method.card": payment_method["card"],
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
    }
    for name, fields in nulls.items():
        assert {field: rendered[name][field] for field in fields} == dict.fromkeys(fields)
    assert rendered["payment_intent"]["amount_details"] == {"tip": {"amount": None}}
