"""What `remit ledger verify` reports when the ledger disagrees with itself."""

from dataclasses import dataclass
from enum import Enum


class DifferenceKind(Enum):
    UNBALANCED_TRANSACTION = "unbalanced_transaction"
    BALANCE_MISMATCH = "balance_mismatch"
    BALANCE_TRANSACTION_MISMATCH = "balance_transaction_mismatch"
    PENDING_OUTCOME_MISMATCH = "pending_outcome_mismatch"
    REVERSAL_MISMATCH = "reversal_mismatch"
    ACCOUNT_FLAG_MISMATCH = "account_flag_mismatch"
    REFUNDS_EXCEED_CHARGE = "refunds_exceed_charge"
    MISSING_BALANCE_TRANSACTION = "missing_balance_transaction"
    PAYOUT_MISMATCH = "payout_mismatch"
    FOREIGN_LEDGER_ACCOUNT = "foreign_ledger_account"


@dataclass(frozen=True)
class Difference:
    kind: DifferenceKind
    account_id: str
    currency: str
    expected_minor: int
    actual_minor: int
    description: str
    transaction_id: str | None = None
    ledger_account: str | None = None
