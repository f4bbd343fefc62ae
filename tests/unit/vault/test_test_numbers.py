"""Which test id a stored card's number stands for, read from its fingerprint alone."""

from datetime import UTC, datetime

from remit.core.secrets import Secret
from remit.vault.crypto import fingerprint, new_key_ring
from remit.vault.test_cards import TEST_ID_OF_NUMBER, TEST_IDS, known_test_number
from remit.vault.test_numbers import TestNumberFingerprints


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


def test_a_fingerprint_names_its_test_id_in_test_mode_under_the_rings_own_key() -> None:
    made = datetime(2026, 3, 1, tzinfo=UTC)
    ring, other_ring = new_key_ring("kek", made), new_key_ring("kek", made)
    index = TestNumberFingerprints()
    visa = fingerprint(ring, Secret("4242424242424242"))
    assert index.test_id_of(ring, visa, livemode=False) == "pm_card_visa"
    assert index.test_id_of(ring, visa, livemode=True) is None
    assert (
        index.test_id_of(ring, fingerprint(ring, Secret("4111111111111111")), livemode=False)
        is None
    )
    # Another fingerprint key: the index is made again, and the old fingerprint means nothing.
    assert index.test_id_of(other_ring, visa, livemode=False) is None
    other_visa = fingerprint(other_ring, Secret("4242424242424242"))
    assert index.test_id_of(other_ring, other_visa, livemode=False) == "pm_card_visa"
