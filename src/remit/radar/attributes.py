"""The attributes rules may name (`:amount_in_usd:`), with their types.

Names follow Stripe Radar's attributes where Stripe has one; the velocity and first-seen
attributes are remit's own spelling of the same ideas. A rule naming anything else is refused
when it is saved.
"""

from enum import Enum
from typing import Final


class Kind(Enum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"


ATTRIBUTES: Final[dict[str, Kind]] = {
    # The payment.
    # In dollars (major units, two decimals) at signals.py's fixed reference rates: the one to
    # compare with a threshold meant for every currency (`:amount_in_usd: > 1000`).
    "amount_in_usd": Kind.NUMBER,
    # In the minor unit of the payment's own currency, as the API takes it: `:amount: > 100000`
    # is more than 1,000.00 usd but more than 100,000 jpy (no minor unit) and 100.000 kwd (three
    # decimals). Meaningful only with the currency (`:currency: = 'eur' and :amount: > 100000`).
    "amount": Kind.NUMBER,
    "currency": Kind.STRING,
    "is_off_session": Kind.BOOLEAN,
    "is_3d_secure_authenticated": Kind.BOOLEAN,
    # The card (never its number: only what the vault shares).
    "card_fingerprint": Kind.STRING,
    "card_brand": Kind.STRING,
    "card_funding": Kind.STRING,
    "card_country": Kind.STRING,
    # The buyer.
    "customer": Kind.STRING,
    "email": Kind.STRING,
    "ip_address": Kind.STRING,
    "ip_country": Kind.STRING,
    # Checks the acquirer reported for this card on its previous authorization.
    "cvc_check": Kind.STRING,
    "address_zip_check": Kind.STRING,
    # Velocity, counted over sliding windows of the account's own attempts.
    "total_charges_per_card_number_hourly": Kind.NUMBER,
    "total_charges_per_card_number_daily": Kind.NUMBER,
    "declined_charges_per_card_number_daily": Kind.NUMBER,
    "declined_charges_in_a_row_per_card_number": Kind.NUMBER,
    "total_charges_per_customer_hourly": Kind.NUMBER,
    "total_charges_per_customer_daily": Kind.NUMBER,
    "total_charges_per_ip_address_hourly": Kind.NUMBER,
    "total_charges_per_ip_address_daily": Kind.NUMBER,
    # How new the card and the customer are to the account.
    "seconds_since_first_seen_card": Kind.NUMBER,
    "seconds_since_first_seen_customer": Kind.NUMBER,
    # The score.
    "risk_score": Kind.NUMBER,
    "risk_level": Kind.STRING,
}
