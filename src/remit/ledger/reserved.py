"""What only the ledger itself posts: the chart's accounts and the transaction ids it derives.

The generic posting RPCs move money between ledger accounts of the caller's choosing. Were they
to touch the chart's accounts (the Stripe balance, fees, payouts in transit, ...), the balance
transactions Stripe shows would no longer add up to the books; were they to take an id the
ledger derives (`ch_...:capture`, `txn_...:available`, `po_...:paid`), the ledger's own
posting would later find that id taken by a different transaction and fail, on every retry,
holding up the job batch it belongs to.
"""

from collections.abc import Iterable
from typing import Final

from remit.ledger.chart import (
    ACQUIRER_CLEARING,
    AVAILABLE,
    FEES,
    NETWORK_FEES,
    PAID_OUT,
    PAYOUTS_IN_TRANSIT,
    PENDING,
)
from remit.ledger.domain import Posting, ledger_invalid

SYSTEM_ACCOUNTS: Final = frozenset(
    {ACQUIRER_CLEARING, PENDING, AVAILABLE, FEES, NETWORK_FEES, PAYOUTS_IN_TRANSIT, PAID_OUT}
)

# The steps the ledger appends to an id to name the transactions it posts
# (`remit.ledger.postings`, `remit.ledger.payouts`, and `journal.expire_pending`, which names
# a pending transaction's expiry after it: `ch_...:authorization:expired`).
DERIVED_STEPS: Final = frozenset(
    {
        "authorization",
        "void",
        "capture",
        "fee",
        "expired",
        "available",
        "refund",
        "refund_hold",
        "refund_release",
        "refund_failure",
        "payout",
        "paid",
        "failure",
        "cancel",
        "dispute",
        "dispute_reversal",
    }
)


def refuse_system_accounts(postings: Iterable[Posting], param: str) -> None:
    for posting in postings:
        if posting.ledger_account in SYSTEM_ACCOUNTS:
            raise ledger_invalid(
                f"The {posting.ledger_account!r} ledger account belongs to the ledger's chart "
                "and only moves through charges, refunds, disputes and payouts.",
                param,
            )


def refuse_derived_id(transaction_id: str, param: str) -> None:
    """Refuse an id with a derived step after any of its colons, not only the last: the ledger
    derives ids from ids it derived (an expiry's from its reservation's), so an id made from
    one of them (`ch_...:authorization:...`) is refused as well, whatever follows."""
    head, *steps = transaction_id.split(":")
    for step in steps:
        if head and step in DERIVED_STEPS:
            raise ledger_invalid(
                f"Transaction ids with ':{step}' in them name the ledger's own postings; "
                f"choose another id than {transaction_id!r}.",
                param,
            )
        head = f"{head}:{step}"
