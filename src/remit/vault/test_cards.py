"""Stripe's test PaymentMethod and token ids, and the test card numbers behind them.

The numbers are public test numbers (stripe-wire.md section 9); they exist only in test mode and
the vault still stores them encrypted like any other card, so one code path serves both.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from remit.core.ids import has_prefix
from remit.core.secrets import Secret
from remit.vault.cards import Funding


@dataclass(frozen=True)
class TestCard:
    __test__ = False

    number: Secret[str]
    funding: Funding = Funding.CREDIT
    country: str = "US"


def _card(number: str, funding: Funding = Funding.CREDIT) -> TestCard:
    return TestCard(Secret(number), funding)


VISA: Final = _card("4242424242424242")
VISA_DEBIT: Final = _card("4000056655665556", Funding.DEBIT)
MASTERCARD: Final = _card("5555555555554444")
MASTERCARD_2_SERIES: Final = _card("2223003122003222")
AMEX: Final = _card("378282246310005")
DISCOVER: Final = _card("6011111111111117")
DINERS: Final = _card("3056930009020004")
JCB: Final = _card("3566002020360505")
UNIONPAY: Final = _card("6200000000000005")
DECLINED: Final = _card("4000000000000002")

TEST_IDS: Final[dict[str, TestCard]] = {
    "pm_card_visa": VISA,
    "tok_visa": VISA,
    "pm_card_visa_debit": VISA_DEBIT,
    "tok_visa_debit": VISA_DEBIT,
    "pm_card_mastercard": MASTERCARD,
    "tok_mastercard": MASTERCARD,
    "pm_card_amex": AMEX,
    "tok_amex": AMEX,
    "pm_card_discover": DISCOVER,
    "tok_discover": DISCOVER,
    "pm_card_diners": DINERS,
    "tok_diners": DINERS,
    "pm_card_jcb": JCB,
    "tok_jcb": JCB,
    "pm_card_unionpay": UNIONPAY,
    "tok_unionpay": UNIONPAY,
    "pm_card_visa_chargeDeclined": DECLINED,
    "tok_chargeDeclined": DECLINED,
    "pm_card_visa_chargeDeclinedInsufficientFunds": _card("4000000000009995"),
    "tok_chargeDeclinedInsufficientFunds": _card("4000000000009995"),
    "pm_card_visa_chargeDeclinedLostCard": _card("4000000000009987"),
    "tok_chargeDeclinedLostCard": _card("4000000000009987"),
    "pm_card_visa_chargeDeclinedStolenCard": _card("4000000000009979"),
    "tok_chargeDeclinedStolenCard": _card("4000000000009979"),
    "pm_card_chargeDeclinedExpiredCard": _card("4000000000000069"),
    "tok_chargeDeclinedExpiredCard": _card("4000000000000069"),
    "pm_card_chargeDeclinedIncorrectCvc": _card("4000000000000127"),
    "tok_chargeDeclinedIncorrectCvc": _card("4000000000000127"),
    "pm_card_chargeDeclinedProcessingError": _card("4000000000000119"),
    "tok_chargeDeclinedProcessingError": _card("4000000000000119"),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": _card("4000000000006975"),
    "pm_card_chargeCustomerFail": _card("4000000000000341"),
    "tok_chargeCustomerFail": _card("4000000000000341"),
    "pm_card_authenticationRequiredOnSetup": _card("4000002500003155"),
    "pm_card_authenticationRequired": _card("4000002760003184"),
    "pm_card_threeDSecure2Required": _card("4000000000003220"),
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": _card("4000008260003178"),
    "pm_card_createDispute": _card("4000000000000259"),
    "tok_createDispute": _card("4000000000000259"),
    "pm_card_bypassPending": _card("4000000000000077"),
    "tok_bypassPending": _card("4000000000000077"),
    "pm_card_chargeDeclinedFraudulent": _card("4100000000000019"),
    "tok_chargeDeclinedFraudulent": _card("4100000000000019"),
    "pm_card_riskLevelHighest": _card("4000000000004954"),
    "pm_card_riskLevelElevated": _card("4000000000009235"),
}

# Details of known test numbers, so a raw 4242... tokenized directly reads like pm_card_visa.
_BY_NUMBER: Final = {card.number.reveal(): card for card in TEST_IDS.values()} | {
    MASTERCARD_2_SERIES.number.reveal(): MASTERCARD_2_SERIES
}


def _test_ids_by_number() -> dict[str, str]:
    """The test id a known test number stands for when it is given as a number: its
    PaymentMethod id (`pm_card_...`, the first listed where several name it), so that the card
    behaves as that id does (stripe-wire.md section 9 gives every behaviour per number and per
    id alike). The 2-series Mastercard has no id of its own: it is a Mastercard that succeeds,
    as `pm_card_mastercard` is."""
    ids: dict[str, str] = {MASTERCARD_2_SERIES.number.reveal(): "pm_card_mastercard"}
    for test_id, card in TEST_IDS.items():
        if test_id.startswith("pm_"):
            ids.setdefault(card.number.reveal(), test_id)
    return ids


TEST_ID_OF_NUMBER: Final[Mapping[str, str]] = _test_ids_by_number()


def test_card_for(test_id: str) -> TestCard | None:
    return TEST_IDS.get(test_id)


def known_test_number(number: Secret[str]) -> TestCard | None:
    return _BY_NUMBER.get(number.reveal())


def is_test_id(object_id: str) -> bool:
    return object_id in TEST_IDS


def is_test_payment_method_id(object_id: str) -> bool:
    """Whether `object_id` is a Stripe test payment method id (`pm_card_visa`), which names a
    test card rather than one of an account's payment methods (`tok_visa` does not)."""
    return is_test_id(object_id) and has_prefix(object_id, "pm")
