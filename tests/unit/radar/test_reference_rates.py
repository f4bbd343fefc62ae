"""Every currency a payment may be in has an amount in USD for rules and the model, and
`:amount:` is the payment's own minor units."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.payments.charges import CardSnapshot
from remit.payments.ports import AttemptFacts
from remit.radar.rules import parse_predicate
from remit.radar.signals import USD_PER_UNIT, Velocity, amount_in_usd, build_signals

CARD = CardSnapshot("visa", "4242", 12, 2034, fingerprint="fp_1")


def test_every_supported_currency_has_a_reference_rate() -> None:
    assert set(SUPPORTED_CURRENCIES) <= set(USD_PER_UNIT)
    assert all(rate > 0 for rate in USD_PER_UNIT.values())


# About $50,000 in each currency, in its minor units, at rates found independently of the
# table (late 2023): two-decimal, three-decimal and zero-decimal currencies alike.
FIFTY_THOUSAND_DOLLARS = [
    ("zar", 935_000_00),  # R 935,000.00
    ("kwd", 15_400_000),  # KD 15,400.000
    ("thb", 1_775_000_00),  # 1,775,000.00 baht
    ("jpy", 7_450_000),  # 7,450,000 yen
    ("isk", 7_000_000_00),  # 7,000,000 kr, in Stripe's hundredths of a króna
    ("idr", 780_000_000_00),  # Rp 780,000,000.00
]


@pytest.mark.parametrize(("currency", "amount_minor"), FIFTY_THOUSAND_DOLLARS)
def test_fifty_thousand_dollars_in_any_currency_is_about_fifty_thousand_in_usd(
    currency: str, amount_minor: int
) -> None:
    usd = amount_in_usd(amount_minor, currency)
    assert usd is not None
    assert Decimal(25_000) < usd < Decimal(100_000)


@pytest.mark.parametrize(
    ("currency", "amount_minor", "amount_over", "usd_over"),
    [
        ("usd", 100_001, True, True),  # 1,000.01 usd
        ("jpy", 100_001, True, False),  # 100,001 yen, about $670
        ("kwd", 100_001, True, False),  # 100.001 dinars, about $324
        ("jpy", 200_000, True, True),  # 200,000 yen, about $1,340
        ("kwd", 400_000, True, True),  # 400.000 dinars, about $1,300
        ("isk", 200_000, True, False),  # 2,000 kr in hundredths, about $14, not $1,420
        ("usd", 90_000, False, False),  # 900.00 usd
        ("idr", 100_000, False, False),  # Rp 1,000.00, about 6 cents
    ],
)
def test_amount_is_in_the_payments_own_minor_units_and_amount_in_usd_in_dollars(
    currency: str, amount_minor: int, amount_over: bool, usd_over: bool
) -> None:
    """As docs/radar.md and attributes.py document them: `:amount:` compares the payment's own
    minor units, whatever they are worth; `:amount_in_usd:` compares dollars."""
    facts = AttemptFacts("acct_1", "pi_1", "ch_1", amount_minor, currency, CARD, datetime.now(UTC))
    signals = build_signals(facts, Velocity({}))
    assert parse_predicate(":amount: > 100000").run(signals, {}) is amount_over
    assert parse_predicate(":amount_in_usd: > 1000").run(signals, {}) is usd_over
