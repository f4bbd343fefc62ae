"""What Stripe shows of the ledger: balance transactions, payouts, the balance itself."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final


class BalanceTransactionType(Enum):
    CHARGE = "charge"
    REFUND = "refund"
    REFUND_FAILURE = "refund_failure"
    PAYOUT = "payout"
    PAYOUT_CANCEL = "payout_cancel"
    PAYOUT_FAILURE = "payout_failure"
    ADJUSTMENT = "adjustment"


# Stripe's reporting categories for the types remit produces.
REPORTING_CATEGORY: Final = {
    BalanceTransactionType.CHARGE: "charge",
    BalanceTransactionType.REFUND: "refund",
    BalanceTransactionType.REFUND_FAILURE: "refund_failure",
    BalanceTransactionType.PAYOUT: "payout",
    BalanceTransactionType.PAYOUT_CANCEL: "payout_reversal",
    BalanceTransactionType.PAYOUT_FAILURE: "payout_reversal",
    BalanceTransactionType.ADJUSTMENT: "other_adjustment",
}


# Stripe shows a dispute's withdrawal as an adjustment of this category...
DISPUTE_REPORTING_CATEGORY: Final = "dispute"
# ...and the reinstatement of a won dispute's amount as one of this.
DISPUTE_REVERSAL_REPORTING_CATEGORY: Final = "dispute_reversal"


class BalanceTransactionStatus(Enum):
    PENDING = "pending"
    AVAILABLE = "available"


@dataclass(frozen=True)
class FeeDetail:
    amount: int
    currency: str
    description: str
    type: str


PROCESSING_FEE_DESCRIPTION: Final = "Remit processing fees"


@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    account_id: str
    ledger_transaction_id: str
    type: BalanceTransactionType
    amount: int
    fee: int
    net: int
    currency: str
    status: BalanceTransactionStatus
    available_on: datetime
    created_at: datetime
    fee_details: tuple[FeeDetail, ...] = ()
    source_id: str | None = None
    description: str | None = None
    payout_id: str | None = None
    charge_id: str | None = None
    acquirer_reference: str | None = None
    authorization_id: str | None = None
    # Its reporting category when it is not its type's (`REPORTING_CATEGORY`): an adjustment
    # made by a dispute is reported as a dispute, or a dispute_reversal when it was won.
    category: str | None = None

    @property
    def reporting_category(self) -> str:
        return self.category or REPORTING_CATEGORY[self.type]


class PayoutStatus(Enum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"


class PayoutMethod(Enum):
    STANDARD = "standard"
    INSTANT = "instant"


@dataclass(frozen=True)
class NewPayout:
    """The parameters of a payout the merchant asks for."""

    amount: int
    currency: str
    description: str | None = None
    method: PayoutMethod = PayoutMethod.STANDARD
    statement_descriptor: str | None = None
    metadata: dict[str, str] | None = None
    destination: str | None = None
    source_type: str = "card"


@dataclass(frozen=True)
class Payout:
    id: str
    account_id: str
    amount: int
    currency: str
    status: PayoutStatus
    arrival_date: datetime
    automatic: bool
    method: PayoutMethod
    source_type: str
    created_at: datetime
    updated_at: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)
    balance_transaction_id: str | None = None
    failure_balance_transaction_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    description: str | None = None
    destination: str | None = None
    statement_descriptor: str | None = None


@dataclass(frozen=True)
class BalanceAmount:
    amount: int
    currency: str


@dataclass(frozen=True)
class Balance:
    available: tuple[BalanceAmount, ...]
    pending: tuple[BalanceAmount, ...]
