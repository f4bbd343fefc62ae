"""A posting refused because a ledger account's balance would leave the range the ledger holds.

One posting moves at most `MAX_POSTING_AMOUNT` (2**62 - 1) either way, but nothing bounds the
sum of many: a balance, posted or reserved by open pending transactions, is a bigint, and a
posting that would take one past it fails on the server with SQLSTATE 22003
(numeric_value_out_of_range), the whole unit of work rolled back. For the ledger's generic
postings that is the caller's request exceeding what the ledger can hold, refused as
FAILED_PRECONDITION `balance_out_of_range` like an insufficient balance is. Elsewhere (a payment's
postings, amounts far smaller) the same SQLSTATE is a bug, and stays an internal error.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from remit.core.errors import ErrorKind
from remit.ledger.domain import LedgerError
from remit.storage.driver_errors import refused_for_its_values

NUMERIC_VALUE_OUT_OF_RANGE: Final = "22003"
LARGEST_BALANCE: Final = 2**63 - 1


def balance_out_of_range() -> LedgerError:
    return LedgerError(
        message=(
            "The posting would take a ledger account's balance (posted, or reserved by open "
            "pending transactions) beyond what the ledger can hold: "
            f"{LARGEST_BALANCE} minor units either way."
        ),
        kind=ErrorKind.FAILED_PRECONDITION,
        code="balance_out_of_range",
    )


@contextmanager
def balances_in_range() -> Iterator[None]:
    """Around a unit of work that posts (its commit included: a posting's write may go out
    with it): a balance taken out of range is refused as `balance_out_of_range`."""
    try:
        yield
    except Exception as error:
        if refused_for_its_values(error) == NUMERIC_VALUE_OUT_OF_RANGE:
            raise balance_out_of_range() from None
        raise
