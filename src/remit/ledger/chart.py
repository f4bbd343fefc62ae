"""The chart of ledger accounts remit's money movements use, per merchant and currency.

Every ledger account belongs to one merchant account, the platform's fee revenue included
("fees": what the platform earned from this merchant), so every posting touches one account's
rows only: transactions stay single-shard and one account's hash chain covers all of them. The
platform's total revenue is the sum of every account's "fees"; what it keeps of it, that sum
plus every account's "network_fees" (the card network's cost, negative).

Signs follow the ledger's rule (positive = money held there), so the counterparties money comes
from carry negative balances:

- acquirer_clearing: minus what the card network sends for this merchant: captures, less the
  fees it withholds from them (network_fees), less refunds. So it follows the money that
  actually reaches the platform's bank, row for row with the settlement report.
- pending (>= 0): captured funds not yet available; Stripe's pending balance.
- available: funds available for payout; Stripe's available balance. Refunds may take it below
  zero, as on Stripe; payouts may not (they post with a guard on it).
- fees (>= 0): processing fees the platform earned.
- network_fees (<= 0): minus the interchange and scheme fees the card network withheld from
  this merchant's captures: the platform's cost, not the merchant's (the merchant pays the
  platform's price, in fees). fees + network_fees is what the platform keeps. Never shown to
  the merchant: no balance transaction carries it. Captures booked before the ledger recorded
  network fees have none here; reconciliation leaves their fee unchecked.
- payouts_in_transit (>= 0): paid out, on its way to the merchant's bank.
- paid_out (>= 0): arrived at the merchant's bank.

Only the ledger posts to these accounts (`reserved.py`): the generic posting RPCs refuse them.
"""

from typing import Final

ACQUIRER_CLEARING: Final = "acquirer_clearing"
PENDING: Final = "pending"
AVAILABLE: Final = "available"
FEES: Final = "fees"
NETWORK_FEES: Final = "network_fees"
PAYOUTS_IN_TRANSIT: Final = "payouts_in_transit"
PAID_OUT: Final = "paid_out"

# Guarded for good: postings that would take these below zero fail.
NON_NEGATIVE: Final[dict[str, bool]] = {
    PENDING: True,
    FEES: True,
    PAYOUTS_IN_TRANSIT: True,
    PAID_OUT: True,
}
