"""An endpoint may name, and events may be filtered on, every event type Stripe documents, as
Stripe's own API takes them; the list is Stripe's, held to its spec so that it cannot drift."""

import json
import os
from pathlib import Path

import pytest

from remit.webhooks.event_types import (
    ALL_EVENTS,
    EVENT_TYPES,
    UnknownEventTypeError,
    validate_enabled_events,
    validate_type_filter,
)
from remit.webhooks.stripe_event_types import STRIPE_EVENT_TYPES

# Stripe's OpenAPI spec the list was copied from (see `remit.webhooks.stripe_event_types`): it
# is reference data kept beside the repository's checkout (`../shared/reference`), not in it.
_BESIDE_THE_CHECKOUT = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "reference"
    / "stripe-openapi-subset.json"
)
STRIPE_OPENAPI = Path(os.environ.get("REMIT_STRIPE_OPENAPI", str(_BESIDE_THE_CHECKOUT)))


def _enabled_events_enum(operation_path: str) -> list[str]:
    spec = json.loads(STRIPE_OPENAPI.read_text())
    body = spec["paths"][operation_path]["post"]["requestBody"]
    schema = body["content"]["application/x-www-form-urlencoded"]["schema"]
    enum: list[str] = schema["properties"]["enabled_events"]["items"]["enum"]
    return enum


@pytest.mark.skipif(not STRIPE_OPENAPI.is_file(), reason=f"no Stripe spec at {STRIPE_OPENAPI}")
@pytest.mark.parametrize(
    "operation_path", ["/v1/webhook_endpoints", "/v1/webhook_endpoints/{webhook_endpoint}"]
)
def test_the_types_are_exactly_those_of_stripe_s_spec(operation_path: str) -> None:
    enum = _enabled_events_enum(operation_path)
    assert ALL_EVENTS in enum
    assert len(enum) == len(set(enum))
    assert set(enum) - {ALL_EVENTS} == STRIPE_EVENT_TYPES


def test_every_type_remit_emits_is_one_stripe_documents() -> None:
    """Otherwise an endpoint configured for Stripe could not subscribe to it."""
    assert EVENT_TYPES <= STRIPE_EVENT_TYPES


def test_an_endpoint_may_name_stripe_types_remit_never_emits() -> None:
    """An endpoint configuration taken over from Stripe as it is: `invoice.paid` is never
    delivered, `payment_intent.succeeded` is."""
    wanted = ["payment_intent.succeeded", "invoice.paid", "customer.subscription.deleted"]
    assert "invoice.paid" not in EVENT_TYPES
    assert validate_enabled_events(wanted) == wanted


@pytest.mark.parametrize(
    ("enabled", "index"),
    [
        (["charge.exploded"], 0),
        (["invoice.paid", "invoice.exploded"], 1),
        # Stripe takes no wildcard but "*" on an endpoint.
        (["invoice.paid", "invoice.*"], 1),
        (["payment_intent.succeeded", "Invoice.paid"], 1),
    ],
)
def test_a_string_that_is_no_stripe_type_is_still_refused_where_it_was_given(
    enabled: list[str], index: int
) -> None:
    with pytest.raises(UnknownEventTypeError) as refused:
        validate_enabled_events(enabled)
    assert (refused.value.value, refused.value.index) == (enabled[index], index)


@pytest.mark.parametrize("value", ["invoice.paid", "invoice.*", "customer.subscription.*", "*"])
def test_a_filter_may_name_stripe_types_remit_never_emits(value: str) -> None:
    assert validate_type_filter(value) == value


@pytest.mark.parametrize("value", ["invoice.exploded", "invoices.*", "nothing.*", ".*"])
def test_a_filter_that_names_no_stripe_type_is_refused(value: str) -> None:
    with pytest.raises(UnknownEventTypeError):
        validate_type_filter(value)
