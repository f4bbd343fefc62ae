"""`remit trigger` can cause every event remit really emits, and only those."""

from remit.webhooks.event_types import EVENT_TYPES
from remit.webhooks.tools import TRIGGERS

NOT_CAUSABLE_YET = {
    # Reviews open only under a Review rule the account must write first.
    "review.opened",
    "review.closed",
    # Payouts and available balances follow the simulated bank's and the availability
    # schedule, not a request.
    "payout.created",
    "payout.updated",
    "payout.paid",
    "payout.failed",
    "payout.canceled",
    "balance.available",
    # An authorization expires 7 days after it was left uncaptured.
    "charge.expired",
    # A refund fails when the acquirer refuses it, which no test card makes it do.
    "refund.failed",
    # A dispute is updated or closed once the worker has opened it, after the payment; its
    # funds are reinstated once the worker has decided its submitted evidence won it.
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_reinstated",
}


def test_every_emitted_event_type_but_the_unbuilt_ones_is_triggerable() -> None:
    assert set(TRIGGERS) <= EVENT_TYPES
    assert EVENT_TYPES - set(TRIGGERS) == NOT_CAUSABLE_YET
