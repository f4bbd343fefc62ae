"""An endpoint may name, and events may be filtered on, every event type Stripe documents, as
Stripe's own API takes them; the list is Stripe's, held to the SDK remit targets so that it cannot
fall behind it."""

import hashlib
import typing
from typing import Any

import pytest
import stripe
from stripe.params import WebhookEndpointCreateParams, WebhookEndpointUpdateParams

from remit.webhooks.event_types import (
    ALL_EVENTS,
    EVENT_TYPES,
    UnknownEventTypeError,
    validate_enabled_events,
    validate_type_filter,
)
from remit.webhooks.stripe_event_types import (
    ADDED_BY_STRIPE_PYTHON_16_1_0,
    FROM_OPENAPI_2023_08_16,
    STRIPE_EVENT_TYPES,
)

# sha256 of the sorted, newline-joined `enabled_events` enum (less "*") of Stripe's OpenAPI spec
# for API version 2023-08-16 (github.com/stripe/openapi tag v524, `openapi/spec3.yaml`), taken
# from the spec itself: the spec is not in the repository, this stands for it.
OPENAPI_2023_08_16_ENUM_SHA256 = "e9a746f90c04657d3942badc39f37e6303dda75bd6c2a8856add5ac01edfb6a7"


def _literal_strings(annotation: Any) -> set[str]:
    """Every string of every `Literal` inside an annotation (`List[Literal[...]]` and the like)."""
    if typing.get_origin(annotation) is typing.Literal:
        return {value for value in typing.get_args(annotation) if isinstance(value, str)}
    return {value for arg in typing.get_args(annotation) for value in _literal_strings(arg)}


def _sdk_event_types() -> set[str]:
    """The types the installed stripe-python declares on `Event.type`."""
    return _literal_strings(typing.get_type_hints(stripe.Event)["type"])


def _sdk_enabled_events(params: type) -> set[str]:
    # The raw annotation: resolving the whole class's hints trips on forward references to
    # names the SDK imports only when type checking.
    return _literal_strings(params.__annotations__["enabled_events"])


def test_every_type_the_sdk_knows_is_accepted() -> None:
    event_types = _sdk_event_types()
    # Introspection that found nothing would hold any list.
    assert {"payment_intent.succeeded", "invoice_payment.paid"} <= event_types
    assert sorted(event_types - STRIPE_EVENT_TYPES) == []


@pytest.mark.parametrize("params", [WebhookEndpointCreateParams, WebhookEndpointUpdateParams])
def test_every_type_the_sdk_lets_an_endpoint_name_is_accepted(params: type) -> None:
    enabled_events = _sdk_enabled_events(params)
    assert {ALL_EVENTS, "billing.meter.created"} <= enabled_events
    assert sorted(enabled_events - {ALL_EVENTS} - STRIPE_EVENT_TYPES) == []


def test_the_types_added_since_the_spec_are_the_sdk_s_and_new() -> None:
    """No misspelt type slips in with them, nor one the spec already had."""
    assert sorted(ADDED_BY_STRIPE_PYTHON_16_1_0 - _sdk_event_types()) == []
    assert not ADDED_BY_STRIPE_PYTHON_16_1_0 & FROM_OPENAPI_2023_08_16


def test_the_spec_s_types_are_kept_as_copied() -> None:
    listed = "\n".join(sorted(FROM_OPENAPI_2023_08_16)).encode()
    assert len(FROM_OPENAPI_2023_08_16) == 222
    assert hashlib.sha256(listed).hexdigest() == OPENAPI_2023_08_16_ENUM_SHA256


def test_every_type_remit_emits_is_one_stripe_documents() -> None:
    """Otherwise an endpoint configured for Stripe could not subscribe to it."""
    assert EVENT_TYPES <= STRIPE_EVENT_TYPES


def test_an_endpoint_may_name_stripe_types_remit_never_emits() -> None:
    """An endpoint configuration taken over from Stripe as it is: `invoice.paid` is never
    delivered, `payment_intent.succeeded` is. Types of the current API (`invoice_payment.paid`,
    `billing.alert.triggered`) and of retired ones (`sku.created`) alike."""
    wanted = [
        "payment_intent.succeeded",
        "invoice.paid",
        "customer.subscription.deleted",
        "invoice_payment.paid",
        "invoice.overdue",
        "invoice.will_be_due",
        "billing.alert.triggered",
        "sku.created",
    ]
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


@pytest.mark.parametrize(
    "value",
    [
        "invoice.paid",
        "invoice.*",
        "customer.subscription.*",
        "*",
        "invoice_payment.paid",
        "invoice_payment.*",
        "billing.meter.*",
    ],
)
def test_a_filter_may_name_stripe_types_remit_never_emits(value: str) -> None:
    assert validate_type_filter(value) == value


@pytest.mark.parametrize("value", ["invoice.exploded", "invoices.*", "nothing.*", ".*"])
def test_a_filter_that_names_no_stripe_type_is_refused(value: str) -> None:
    with pytest.raises(UnknownEventTypeError):
        validate_type_filter(value)
