"""Processing fees and splits, in integer minor units with one rounding rule.

The rule: compute the exact rational amount, then round it once, half to even
(`remit.core.money.divide_round_half_even`). Nothing is rounded twice and no float is involved.

Pricing is per account: `fee_percent_bps` basis points of the amount plus `fee_fixed_minor`
(default 290 bps + 30, Stripe's 2.9% + 30 cents). The fixed part is stated in hundredths of the
currency's major unit, whatever the currency, and converted to its minor units by its exponent:
30 means 0.30 of the currency, so 30 cents in USD (exponent 2), 300 fils in KWD (exponent 3:
0.300 KWD) and 0.30 yen in JPY (exponent 0), which rounds away inside the single rounding step.
One setting therefore means the same fraction of a major unit in every currency, and a
zero-decimal currency is never charged a fixed fee a hundred times too large.

A fee never exceeds the amount it is charged on (a capture of 0.10 USD pays 0.10, not 0.33), so
a charge's net is never negative; nor is it ever negative, which would have the platform pay the
merchant for processing. Pricing is checked when it is written (`remit.accounts.settings`), so
neither bound is reached through settings; they hold for any pricing all the same, because the
fee is computed as the capture is booked, after the network has moved the money, when refusing
it can no longer undo anything.

Refunds keep the fee by default, as Stripe does. With `RefundFeePolicy.PROPORTIONAL` each
refund returns round(fee * refunded_total / gross) less what earlier refunds returned: the
share is computed on the running total, so several partial refunds return exactly the whole
fee once the charge is fully refunded, with no cent lost to repeated rounding.
"""

from collections.abc import Sequence
from enum import Enum
from typing import Final

from remit.accounts.domain import Pricing
from remit.core.currency import minor_unit_exponent
from remit.core.money import allocate, divide_round_half_even

# The fixed fee is stated with this many decimals (hundredths of a major unit).
FIXED_FEE_EXPONENT: Final = 2
_BPS: Final = 10_000


class RefundFeePolicy(Enum):
    KEEP = "keep"  # Stripe's default: the processing fee is not returned on refunds
    PROPORTIONAL = "proportional"


def _fixed_in_minor_units(fixed: int, currency: str) -> tuple[int, int]:
    """A fixed amount stated in hundredths of a major unit (`FIXED_FEE_EXPONENT`), in
    `currency`'s minor units exactly, as a numerator over a denominator: 30 is 30000/100 (300
    fils) in KWD, 3000/100 (30 cents) in USD, 30/100 of a yen in JPY."""
    return fixed * 10 ** minor_unit_exponent(currency), 10**FIXED_FEE_EXPONENT


def fixed_fee_minor(fixed: int, currency: str) -> int:
    """A fee of a fixed `fixed` hundredths of a major unit in `currency`'s minor units, rounded
    once (half to even): the same share of a major unit in every currency, as the fixed part of
    the processing fee is."""
    numerator, denominator = _fixed_in_minor_units(fixed, currency)
    return divide_round_half_even(numerator, denominator)


def processing_fee(amount_minor: int, currency: str, pricing: Pricing) -> int:
    """The fee on capturing `amount_minor` of `currency`: between 0 and the amount itself."""
    if amount_minor < 0:
        raise ValueError("fees are charged on non-negative amounts")
    fixed, per = _fixed_in_minor_units(pricing.fee_fixed_minor, currency)
    # fee = amount * bps / 10^4 + fixed / per, over one common denominator.
    numerator = amount_minor * pricing.fee_percent_bps * per + fixed * _BPS
    fee = divide_round_half_even(numerator, _BPS * per)
    return min(max(fee, 0), amount_minor)


def fee_returned_by_refund(
    *,
    charge_gross_minor: int,
    charge_fee_minor: int,
    refunded_before_minor: int,
    fee_returned_before_minor: int,
    refund_minor: int,
    policy: RefundFeePolicy,
) -> int:
    """How much of the charge's fee this refund gives back under `policy`.

    Proportional: the share the refunded total has reached, less what earlier refunds already
    gave back, so the sum over all refunds of a fully refunded charge is exactly its fee.
    """
    if policy is RefundFeePolicy.KEEP or charge_gross_minor == 0:
        return 0
    reached = divide_round_half_even(
        charge_fee_minor * (refunded_before_minor + refund_minor), charge_gross_minor
    )
    still_held = charge_fee_minor - fee_returned_before_minor
    return min(max(reached - fee_returned_before_minor, 0), still_held)


def split(total_minor: int, weights: Sequence[int]) -> list[int]:
    """Split an amount into parts proportional to `weights` that always sum to the total
    (largest remainder; see `remit.core.money.allocate`)."""
    return allocate(total_minor, weights)
