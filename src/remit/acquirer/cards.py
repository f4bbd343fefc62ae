"""The simulated network's card behaviour: Stripe's documented test cards, brands, and Luhn.

Every number here is a public Stripe test card (https://stripe.com/testing). A number that is
not in the table behaves like an ordinary card: it approves when its Luhn check digit is right.
"""

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final


class Brand(Enum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    JCB = "jcb"
    DINERS = "diners"
    UNIONPAY = "unionpay"
    UNKNOWN = "unknown"


class Funding(Enum):
    CREDIT = "credit"
    DEBIT = "debit"
    PREPAID = "prepaid"


class Risk(Enum):
    NORMAL = "normal"
    ELEVATED = "elevated"
    HIGHEST = "highest"


class AddressCheck(Enum):
    """What the issuer says about the billing address, when one is given."""

    MATCH = "match"
    LINE1_FAILS = "line1_fails"
    POSTAL_CODE_FAILS = "postal_code_fails"
    BOTH_FAIL = "both_fail"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Decline:
    """An issuer (or pre-network) refusal in Stripe's vocabulary."""

    code: str
    decline_code: str | None
    message: str
    sent_to_network: bool = True


@dataclass(frozen=True)
class CardProfile:
    """How one card behaves on authorization."""

    funding: Funding = Funding.CREDIT
    decline: Decline | None = None
    risk: Risk = Risk.NORMAL
    # Declines with incorrect_cvc when a CVC is presented (cvc_check fail), approves without.
    cvc_check_fails: bool = False
    address_check: AddressCheck = AddressCheck.MATCH
    # Declines with authentication_required unless the cardholder completed 3-D Secure...
    requires_authentication: bool = False
    # ...or, for such a card, the payment is off-session and cites the authenticated setup of
    # this card for off-session payments by this merchant (the issuer's exemption for
    # merchant-initiated payments; Stripe's 4000002500003155).
    exempts_off_session_after_authenticated_setup: bool = False
    bypass_pending: bool = False
    dispute_expected: bool = False


# Stripe's wording for each decline (https://docs.stripe.com/declines/codes).
GENERIC_DECLINE_MESSAGE: Final = "Your card was declined."


def card_declined(decline_code: str, message: str = GENERIC_DECLINE_MESSAGE) -> Decline:
    return Decline(code="card_declined", decline_code=decline_code, message=message)


INCORRECT_NUMBER: Final = Decline(
    code="incorrect_number",
    decline_code=None,
    message="Your card number is incorrect.",
    sent_to_network=False,
)
# Stripe gives `expired_card` no decline_code (stripe-wire.md section 9), unlike card_declined.
EXPIRED_CARD: Final = Decline(
    code="expired_card", decline_code=None, message="Your card has expired."
)
INCORRECT_CVC: Final = Decline(
    code="incorrect_cvc",
    decline_code="incorrect_cvc",
    message="Your card's security code is incorrect.",
)
AUTHENTICATION_REQUIRED: Final = card_declined(
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)

_APPROVE: Final = CardProfile()

TEST_CARDS: Final = MappingProxyType(
    {
        # Approvals by brand.
        "4242424242424242": _APPROVE,
        "4000056655665556": CardProfile(funding=Funding.DEBIT),
        "5555555555554444": _APPROVE,
        "2223003122003222": _APPROVE,
        "5200828282828210": CardProfile(funding=Funding.DEBIT),
        "5105105105105100": CardProfile(funding=Funding.PREPAID),
        "378282246310005": _APPROVE,
        "371449635398431": _APPROVE,
        "6011111111111117": _APPROVE,
        "6011000990139424": _APPROVE,
        "6011981111111113": CardProfile(funding=Funding.DEBIT),
        "3056930009020004": _APPROVE,
        "36227206271667": _APPROVE,
        "3566002020360505": _APPROVE,
        "6200000000000005": _APPROVE,
        "6200000000000047": CardProfile(funding=Funding.DEBIT),
        "6205500000000000004": _APPROVE,
        # Declines.
        "4000000000000002": CardProfile(decline=card_declined("generic_decline")),
        "4000000000009995": CardProfile(
            decline=card_declined("insufficient_funds", "Your card has insufficient funds.")
        ),
        "4000000000009987": CardProfile(decline=card_declined("lost_card")),
        "4000000000009979": CardProfile(decline=card_declined("stolen_card")),
        "4000000000000069": CardProfile(decline=EXPIRED_CARD),
        "4000000000000127": CardProfile(decline=INCORRECT_CVC),
        "4000000000000119": CardProfile(
            decline=Decline(
                code="processing_error",
                decline_code="processing_error",
                message="An error occurred while processing your card. Try again in a little bit.",
            )
        ),
        "4000000000006975": CardProfile(
            decline=card_declined(
                "card_velocity_exceeded",
                "Your card was declined for making repeated attempts too frequently or "
                "exceeding its amount limit.",
            )
        ),
        # Attaches to a customer, then every charge fails (pm_card_chargeCustomerFail).
        "4000000000000341": CardProfile(decline=card_declined("generic_decline")),
        # Checks.
        "4000000000000101": CardProfile(cvc_check_fails=True),
        "4000000000000010": CardProfile(address_check=AddressCheck.BOTH_FAIL),
        "4000000000000028": CardProfile(address_check=AddressCheck.LINE1_FAILS),
        "4000000000000036": CardProfile(address_check=AddressCheck.POSTAL_CODE_FAILS),
        "4000000000000044": CardProfile(address_check=AddressCheck.UNAVAILABLE),
        # 3-D Secure.
        # Authentication for on-session payments and for the setup; none for off-session
        # payments once the card was set up with it.
        "4000002500003155": CardProfile(
            requires_authentication=True, exempts_off_session_after_authenticated_setup=True
        ),
        # Authentication on every payment: off-session ones always decline.
        "4000002760003184": CardProfile(requires_authentication=True),
        "4000000000003220": CardProfile(requires_authentication=True),
        # Needs 3-D Secure, then is declined all the same.
        "4000008260003178": CardProfile(
            requires_authentication=True,
            decline=card_declined("insufficient_funds", "Your card has insufficient funds."),
        ),
        # Radar's test cards. The "always blocked" card never reaches the issuer.
        "4100000000000019": CardProfile(
            decline=Decline(
                code="card_declined",
                decline_code="fraudulent",
                message=GENERIC_DECLINE_MESSAGE,
                sent_to_network=False,
            ),
            risk=Risk.HIGHEST,
        ),
        "4000000000004954": CardProfile(risk=Risk.HIGHEST),
        "4000000000009235": CardProfile(risk=Risk.ELEVATED),
        # Balance and dispute behaviour after a successful payment.
        "4000000000000077": CardProfile(bypass_pending=True),
        "4000000000000259": CardProfile(dispute_expected=True),
    }
)


def profile_for(number: str) -> CardProfile:
    """How `number` behaves: its test-card profile, else an ordinary approving card."""
    return TEST_CARDS.get(number, _APPROVE)


def luhn_valid(number: str) -> bool:
    if not number.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def brand_of(number: str) -> Brand:
    """The card brand from the number's leading digits (the networks' published IIN ranges)."""
    two, four = int(number[:2] or 0), int(number[:4] or 0)
    three = int(number[:3] or 0)
    if number.startswith("4"):
        return Brand.VISA
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return Brand.MASTERCARD
    if two in (34, 37):
        return Brand.AMEX
    if four == 6011 or 644 <= three <= 649 or two == 65:
        return Brand.DISCOVER
    if 3528 <= four <= 3589:
        return Brand.JCB
    if 300 <= three <= 305 or two in (36, 38, 39) or four == 3095:
        return Brand.DINERS
    if two == 62 or two == 81:
        return Brand.UNIONPAY
    return Brand.UNKNOWN
