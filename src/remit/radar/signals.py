"""The signals of one attempt, named as rules name them (see attributes.py).

Everything comes from remit's own data: the attempt, the card details the vault shared, the
intent's metadata (the only place a server-side caller can pass the buyer's IP and its country),
and the velocity counters. The card number is never among them: the core does not have it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from remit.core.currency import SUPPORTED_CURRENCIES
from remit.payments.ports import AttemptFacts
from remit.radar.ip_addresses import canonical_ip
from remit.radar.velocity import Counter, Dimension

# Reference rates (USD per unit of the currency) for rules such as `:amount_in_usd: > 500` and
# for the model's amount feature. Risk thresholds need the order of magnitude, not today's
# rate; no money is ever converted with these. Every supported currency has one (a unit test
# keeps it so): a currency without a rate would have no amount_in_usd, so no amount rule would
# match it and the model would score its amounts as zero.
#
# Approximate mid-market rates of November 2023, to two or three significant figures. Pegged
# currencies use their peg: aed, bhd, djf, jod, omr, qar and sar to the dollar; kmf, xaf, xof
# and xpf to the euro, through the eur rate here. Per unit of the currency, whatever its minor
# unit: 1 jpy (no minor unit) and 1 kwd (three decimals) alike. Not tracked against a live
# feed: refresh a rate, and this date, when its currency has moved by a third or more (ars,
# egp, ngn and try have since, each losing about half its value or more against the dollar).
USD_PER_UNIT: Final[Mapping[str, Decimal]] = {
    "usd": Decimal("1"),
    "eur": Decimal("1.08"),
    "gbp": Decimal("1.27"),
    "chf": Decimal("1.12"),
    "cad": Decimal("0.73"),
    "aud": Decimal("0.66"),
    "nzd": Decimal("0.60"),
    "jpy": Decimal("0.0067"),
    "sek": Decimal("0.095"),
    "nok": Decimal("0.093"),
    "dkk": Decimal("0.145"),
    "pln": Decimal("0.25"),
    "czk": Decimal("0.043"),
    "sgd": Decimal("0.74"),
    "hkd": Decimal("0.128"),
    "inr": Decimal("0.012"),
    "brl": Decimal("0.19"),
    "mxn": Decimal("0.055"),
    "krw": Decimal("0.00073"),
    "cny": Decimal("0.138"),
    # Two decimals.
    "aed": Decimal("0.272"),
    "ars": Decimal("0.0028"),
    "bdt": Decimal("0.0091"),
    "cop": Decimal("0.00025"),
    "egp": Decimal("0.032"),
    "huf": Decimal("0.0029"),
    "idr": Decimal("0.000064"),
    "ils": Decimal("0.26"),
    "kes": Decimal("0.0066"),
    "lkr": Decimal("0.0030"),
    "mad": Decimal("0.099"),
    "myr": Decimal("0.21"),
    "ngn": Decimal("0.0012"),
    "pen": Decimal("0.27"),
    "php": Decimal("0.018"),
    "pkr": Decimal("0.0035"),
    "qar": Decimal("0.275"),
    "ron": Decimal("0.22"),
    "sar": Decimal("0.267"),
    "thb": Decimal("0.028"),
    "try": Decimal("0.035"),
    "twd": Decimal("0.031"),
    "uyu": Decimal("0.025"),
    "zar": Decimal("0.053"),
    # No minor unit.
    "bif": Decimal("0.00035"),
    "clp": Decimal("0.0011"),
    "djf": Decimal("0.0056"),
    "gnf": Decimal("0.00012"),
    "isk": Decimal("0.0071"),
    "kmf": Decimal("0.0022"),
    "mga": Decimal("0.00022"),
    "pyg": Decimal("0.00014"),
    "rwf": Decimal("0.00081"),
    "ugx": Decimal("0.00026"),
    "vnd": Decimal("0.000041"),
    "vuv": Decimal("0.0083"),
    "xaf": Decimal("0.00165"),
    "xof": Decimal("0.00165"),
    "xpf": Decimal("0.0091"),
    # Three decimals.
    "bhd": Decimal("2.66"),
    "jod": Decimal("1.41"),
    "kwd": Decimal("3.24"),
    "omr": Decimal("2.60"),
    "tnd": Decimal("0.32"),
}

# Stripe's Radar test PaymentMethods and tokens, and the risk Stripe documents for them
# (stripe-wire.md section 9). Test mode only: live cards never carry a test id.
TEST_ID_RISK: Final[Mapping[str, str]] = {
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
    "tok_chargeDeclinedFraudulent": "fraudulent",
    "pm_card_riskLevelHighest": "highest",
    "pm_card_riskLevelElevated": "elevated",
}


def risk_hint_of_test_id(test_id: str | None) -> str | None:
    """The risk hint of a payment method made from a test id: the documented level of Stripe's
    Radar test cards, and "normal" for every other test card (documented to succeed: a
    developer's fifth `pm_card_visa` payment of the day is not card testing). None for a card
    without a test id: the model alone scores it."""
    if not test_id:
        return None
    return TEST_ID_RISK.get(test_id, "normal")


IP_METADATA_KEYS: Final = ("ip_address", "ip")
IP_COUNTRY_METADATA_KEY: Final = "ip_country"
EMAIL_METADATA_KEY: Final = "email"


def amount_in_usd(amount_minor: int, currency: str) -> Decimal | None:
    rate = USD_PER_UNIT.get(currency)
    exponent = SUPPORTED_CURRENCIES.get(currency)
    if rate is None or exponent is None:
        return None
    return (Decimal(amount_minor).scaleb(-exponent) * rate).quantize(Decimal("0.01"))


def ip_address_of(facts: AttemptFacts) -> str | None:
    """The buyer's IP as value lists store it (`canonical_ip`), so `::ffff:203.0.113.5` is
    in a list holding 203.0.113.5 and counts with it. None when the metadata holds no IP, or
    something that is not one: it can be in no IP list."""
    for key in IP_METADATA_KEYS:
        value = facts.metadata.get(key)
        if value:
            return canonical_ip(value)
    return None


def velocity_keys(facts: AttemptFacts) -> dict[Dimension, str]:
    """The counters an attempt moves: its card, its customer and its IP, when known."""
    keys: dict[Dimension, str] = {}
    if facts.card.fingerprint:
        keys[Dimension.CARD] = facts.card.fingerprint
    if facts.customer_id:
        keys[Dimension.CUSTOMER] = facts.customer_id
    ip = ip_address_of(facts)
    if ip:
        keys[Dimension.IP] = ip
    return keys


@dataclass(frozen=True)
class Velocity:
    """The counters of an attempt, already including it."""

    counters: Mapping[Dimension, Counter]

    def get(self, dimension: Dimension) -> Counter | None:
        return self.counters.get(dimension)


def _seconds_since(counter: Counter | None, now: datetime) -> int | None:
    if counter is None:
        return None
    return max(0, int((now - counter.first_seen_at).total_seconds()))


def customer_for_email(facts: AttemptFacts) -> str | None:
    """The customer whose email `:email:` would take, when the attempt has no email of its own
    (`email_of`); None when it has one, or has no customer."""
    return None if facts.email or facts.billing_email else facts.customer_id


def email_of(facts: AttemptFacts, customer_email: str | None) -> str | None:
    """The email supplied with the payment, as Stripe's `:email:` is: the intent's receipt
    email, else the payment method's billing details email, else the customer's email, else
    the one a server-side caller put in the intent's `metadata[email]`."""
    return (
        facts.email
        or facts.billing_email
        or customer_email
        or facts.metadata.get(EMAIL_METADATA_KEY)
        or None
    )


def build_signals(
    facts: AttemptFacts, velocity: Velocity, customer_email: str | None = None
) -> dict[str, object]:
    """The attempt's signals; `customer_email` is the email of its customer, if it has one
    and it is needed (`customer_for_email`)."""
    card = velocity.get(Dimension.CARD)
    customer = velocity.get(Dimension.CUSTOMER)
    ip = velocity.get(Dimension.IP)
    ip_country = facts.metadata.get(IP_COUNTRY_METADATA_KEY)
    return {
        "amount": facts.amount_minor,
        "amount_in_usd": amount_in_usd(facts.amount_minor, facts.currency),
        "currency": facts.currency,
        "is_off_session": facts.off_session,
        "is_3d_secure_authenticated": facts.three_d_secure_authenticated,
        "card_fingerprint": facts.card.fingerprint,
        "card_brand": facts.card.brand,
        "card_funding": facts.card.funding,
        "card_country": facts.card.country,
        "customer": facts.customer_id,
        "email": email_of(facts, customer_email),
        "ip_address": ip_address_of(facts),
        "ip_country": ip_country.strip().upper() if ip_country else None,
        "cvc_check": card.last_cvc_check if card else None,
        "address_zip_check": card.last_postal_check if card else None,
        "total_charges_per_card_number_hourly": card.hourly if card else None,
        "total_charges_per_card_number_daily": card.daily if card else None,
        "declined_charges_per_card_number_daily": card.declines_daily if card else None,
        "declined_charges_in_a_row_per_card_number": card.declines_in_a_row if card else None,
        "total_charges_per_customer_hourly": customer.hourly if customer else None,
        "total_charges_per_customer_daily": customer.daily if customer else None,
        "total_charges_per_ip_address_hourly": ip.hourly if ip else None,
        "total_charges_per_ip_address_daily": ip.daily if ip else None,
        "seconds_since_first_seen_card": _seconds_since(card, facts.at),
        "seconds_since_first_seen_customer": _seconds_since(customer, facts.at),
    }
