"""The bounds an account's settings keep, checked in one place whenever they are written.

Creating an account and changing its settings both pass the result through `checked_settings`
(the CLI's `remit accounts create` as well, through `AccountsService`). A setting out of bounds
is refused as it is written, as INVALID_ARGUMENT naming it. Stored, it would fail every card
payment of the account after the network had acted: the fee is computed from the pricing when a
capture is booked, and the availability date from the delay.

The bounds:
- `fee_percent_bps` 0 to 10 000 (0% to 100%): a fee is a share of the amount, never the
  platform paying the merchant;
- `fee_fixed_minor` 0 to 99 999 999, the largest amount a payment may be for: the fee is capped
  at the amount it is charged on anyway (`remit.ledger.fees`), so a larger fixed fee could only
  be a typing slip;
- `available_delay_days` 0 to 365: funds held longer than a year are not a payout schedule,
  and a date that far out stays well inside what a timestamp holds;
- `default_currency` one of `remit.core.currency.SUPPORTED_CURRENCIES`, lowercased as every
  currency of the API is.
"""

from dataclasses import replace
from typing import Final

from remit.accounts.domain import Account
from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import echoed, invalid

MAX_FEE_PERCENT_BPS: Final = 10_000
MAX_FEE_FIXED_MINOR: Final = 99_999_999
MAX_AVAILABLE_DELAY_DAYS: Final = 365


def checked_currency(currency: str) -> str:
    """`currency` lowercased, if remit supports it; else INVALID_ARGUMENT on `default_currency`."""
    lowered = currency.lower()
    if lowered not in SUPPORTED_CURRENCIES:
        raise invalid(
            f"Invalid default_currency: '{echoed(currency)}' is not a supported currency.",
            "default_currency",
            code="invalid_currency",
        )
    return lowered


def _within(value: int, highest: int, setting: str) -> None:
    if not 0 <= value <= highest:
        raise invalid(f"{setting} must be between 0 and {highest}, got {value}.", setting)


def checked_settings(account: Account) -> Account:
    """`account` as it may be stored (its default currency lowercased), or INVALID_ARGUMENT
    naming the first setting out of bounds."""
    _within(account.pricing.fee_percent_bps, MAX_FEE_PERCENT_BPS, "fee_percent_bps")
    _within(account.pricing.fee_fixed_minor, MAX_FEE_FIXED_MINOR, "fee_fixed_minor")
    _within(account.available_delay_days, MAX_AVAILABLE_DELAY_DAYS, "available_delay_days")
    return replace(account, default_currency=checked_currency(account.default_currency))
