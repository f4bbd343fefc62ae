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

# The steps the ledger appends to an object's id to name the transactions it posts for it
# (`remit.ledger.postings`, `remit.ledger.payouts`).
DERIVED_STEPS: Final = frozenset(
    {
        "authorization",
        "void",
        "capture",
        "fee",
        "available",
        "refund",
        "refund_hold",
        "refund_release",
        "refund_failure",
        "payout",
        "paid",
        "failure",
        "cancel",
    }
)


def refuse_system_accounts(postings: Iterable[Posting], param: str) -> None:
    for posting in postings:
        if posting.ledger_account in SYSTEM_ACCOUNTS:
            raise ledger_invalid(
                f"The {posting.ledger_account!r} ledger account belongs to the ledger's chart "
                "and only moves through charges, refunds and payouts.",
                param,
            )


def refuse_derived_id(transaction_id: str, param: str) -> None:
    head, colon, step = transaction_id.rpartition(":")
    if colon and head and step in DERIVED_STEPS:
        raise ledger_invalid(
            f"Transaction ids ending in ':{step}' name the ledger's own postings; "
            f"choose another id than {transaction_id!r}.",
            param,
        )
