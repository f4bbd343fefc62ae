"""Which test id a stored card's number stands for, read from its fingerprint alone."""

from dataclasses import replace
from datetime import UTC, datetime

from remit.core.secrets import Secret
from remit.vault.cards import Brand, Funding
from remit.vault.crypto import (
    FingerprintScope,
    SealedCard,
    SealFormat,
    fingerprint,
    new_key_ring,
    platform_fingerprint,
)
from remit.vault.domain import CardSummary, StoredCard
from remit.vault.test_cards import TEST_ID_OF_NUMBER, TEST_IDS, known_test_number
from remit.vault.test_numbers import card_test_id

MADE = datetime(2026, 3, 1, tzinfo=UTC)


def _card(account_id: str, last4: str, card_fingerprint: str) -> StoredCard:
    """A stored card as its row reads; its seals play no part in the test id."""
    return StoredCard(
        token="vtok_1",
        account_id=account_id,
        livemode=False,
        sealed=SealedCard("card-kek", 1, b"", b"", None, SealFormat.METADATA_BOUND),
        summary=CardSummary(Brand.VISA, last4, 12, 2031, card_fingerprint, Funding.CREDIT, "US"),
        billing_details={},
        created_at=MADE,
    )


def test_every_known_test_number_stands_for_a_payment_method_id_of_that_number() -> None:
    for number, test_id in TEST_ID_OF_NUMBER.items():
        assert test_id.startswith("pm_card_")
        assert known_test_number(Secret(number)) is not None
    for card in TEST_IDS.values():
        named = TEST_ID_OF_NUMBER[card.number.reveal()]
        assert TEST_IDS[named].number.reveal() == card.number.reveal()
    assert TEST_ID_OF_NUMBER["4242424242424242"] == "pm_card_visa"
    assert TEST_ID_OF_NUMBER["4000000000000002"] == "pm_card_visa_chargeDeclined"
    assert TEST_ID_OF_NUMBER["4000000000009235"] == "pm_card_riskLevelElevated"


def test_a_fingerprint_names_its_test_id_in_test_mode_in_its_own_account() -> None:
    ring, other_ring = new_key_ring("kek", MADE), new_key_ring("kek", MADE)
    visa = _card("acct_1", "4242", fingerprint(ring, "acct_1", Secret("4242424242424242")))
    assert card_test_id(ring, visa) == "pm_card_visa"
    assert card_test_id(ring, replace(visa, livemode=True)) is None
    other_number = fingerprint(ring, "acct_1", Secret("4111111111111111"))
    assert card_test_id(ring, _card("acct_1", "1111", other_number)) is None
    # Another account's fingerprint of the number is not this account's.
    assert card_test_id(ring, replace(visa, account_id="acct_2")) is None
    # Another fingerprint key: the old fingerprint means nothing.
    assert card_test_id(other_ring, visa) is None


def test_every_known_test_number_is_recognised_by_its_fingerprint_in_any_account() -> None:
    ring = new_key_ring("kek", MADE)
    for account in ("acct_1", "acct_2"):
        for number, test_id in TEST_ID_OF_NUMBER.items():
            card = _card(account, number[-4:], fingerprint(ring, account, Secret(number)))
            assert card_test_id(ring, card) == test_id


def test_a_card_not_yet_refingerprinted_is_read_by_the_key_every_account_shared() -> None:
    ring = new_key_ring("kek", MADE)
    legacy = platform_fingerprint(ring, Secret("4242424242424242"))
    visa = replace(_card("acct_1", "4242", legacy), fingerprint_scope=FingerprintScope.PLATFORM)
    assert card_test_id(ring, visa) == "pm_card_visa"
    # The same value read as the account's own names nothing.
    assert card_test_id(ring, replace(visa, fingerprint_scope=FingerprintScope.ACCOUNT)) is None
