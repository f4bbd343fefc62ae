"""The event types remit emits, and how an endpoint's `enabled_events` selects among them.

An endpoint (and a filter on listed or streamed events) may name any type Stripe documents
(`STRIPE_EVENT_TYPES`), not only those remit emits: a merchant moving an endpoint's
configuration over from Stripe keeps it as it is, and a type remit never emits is simply never
delivered (nor listed). A string that is no Stripe type is refused: a misspelt type would
otherwise select nothing, silently.
"""

from collections.abc import Iterable
from typing import Final

from remit.webhooks.stripe_event_types import STRIPE_EVENT_TYPES

ALL_EVENTS: Final = "*"

EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "payment_intent.created",
        "payment_intent.requires_action",
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.succeeded",
        "charge.failed",
        "charge.captured",
        "charge.refunded",
        "charge.updated",
        "charge.expired",
        "charge.refund.updated",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "payment_method.attached",
        "payment_method.detached",
        "payment_method.updated",
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "payout.created",
        "payout.updated",
        "payout.paid",
        "payout.failed",
        "payout.canceled",
        "balance.available",
        "review.opened",
        "review.closed",
    }
)


# What an endpoint or a filter may name. remit emits none that Stripe does not document
# (tests/unit/webhooks/test_stripe_event_types.py).
ACCEPTED_EVENT_TYPES: Final[frozenset[str]] = STRIPE_EVENT_TYPES | EVENT_TYPES


# The most event types one endpoint may name, each counted once however often it is given.
# Stripe documents no limit; this keeps an endpoint's row, and the check of every event
# against it, small, and holds on gRPC and REST alike. A type list is rarely long: "*" names
# them all. An endpoint stored with more before the limit keeps them until an update names
# its enabled_events again.
MAX_ENABLED_EVENTS: Final = 100


class TooManyEventTypesError(ValueError):
    """More than MAX_ENABLED_EVENTS distinct event types; carries how many were given."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} event types, more than {MAX_ENABLED_EVENTS}")
        self.count = count


def too_many_event_types(param: str, count: int) -> str:
    """The refusal of `count` distinct event types, in the words the REST facade's schema
    uses for any array of too many distinct items."""
    return (
        f"Invalid array: {param} can have at most {MAX_ENABLED_EVENTS} distinct items, but "
        f"{count} were given."
    )


class UnknownEventTypeError(ValueError):
    """No event type Stripe documents; carries the offending value and where it was given."""

    def __init__(self, value: str, index: int) -> None:
        super().__init__(f"Invalid event type: {value!r}")
        self.value = value
        self.index = index


def validate_enabled_events(enabled: Iterable[str]) -> list[str]:
    """Stripe's rule for endpoints: exact event types, or "*" for every type; no more than
    MAX_ENABLED_EVENTS of them once duplicates are removed."""
    events = list(dict.fromkeys(enabled))
    if len(events) > MAX_ENABLED_EVENTS:
        raise TooManyEventTypesError(len(events))
    for index, value in enumerate(events):
        if value != ALL_EVENTS and value not in ACCEPTED_EVENT_TYPES:
            raise UnknownEventTypeError(value, index)
    return events


def validate_type_filter(value: str) -> str:
    """A filter on listed or streamed events: an exact type or a `prefix.*` wildcard, of any
    type Stripe documents (one remit never emits matches no event)."""
    if value == ALL_EVENTS or value in ACCEPTED_EVENT_TYPES:
        return value
    if value.endswith(".*") and any(t.startswith(value[:-1]) for t in ACCEPTED_EVENT_TYPES):
        return value
    raise UnknownEventTypeError(value, 0)


def filter_matches(filters: Iterable[str], event_type: str) -> bool:
    """Whether `event_type` passes type filters (empty = everything; `x.*` = the x family)."""
    wanted = list(filters)
    if not wanted:
        return True
    return any(
        f in (ALL_EVENTS, event_type) or (f.endswith(".*") and event_type.startswith(f[:-1]))
        for f in wanted
    )
