"""Which Stripe test id a stored card's number stands for, read from its fingerprint.

A test card number given as a number (Stripe.js, `/v1/tokens`, raw card data) must behave as
its test id does (`pm_card_visa` for 4242 4242 4242 4242): Radar reads a card's test id for
the documented risk of Stripe's test cards. The vault is the only holder of the number, so it
answers with the id; the number stays inside it. The stored fingerprint, a keyed hash of the
number, is compared with the fingerprints of the known test numbers, so the answer costs no
decryption and no column of its own: a card tokenized before this existed is recognised too.

Test mode only: a live card is never read as a test card, whatever its number.
"""

from remit.core.secrets import Secret
from remit.vault.crypto import KeyRing, fingerprint
from remit.vault.test_cards import TEST_ID_OF_NUMBER


class TestNumberFingerprints:
    """The test id of each known test number's fingerprint under the ring's fingerprint key,
    computed once per key (a few dozen HMACs)."""

    __test__ = False  # a production class whose name starts with "Test": not a pytest class

    def __init__(self) -> None:
        self._key: bytes | None = None
        self._ids: dict[str, str] = {}

    def test_id_of(self, ring: KeyRing, card_fingerprint: str, *, livemode: bool) -> str | None:
        if livemode:
            return None
        if ring.fingerprint_key != self._key:
            self._ids = {
                fingerprint(ring, Secret(number)): test_id
                for number, test_id in TEST_ID_OF_NUMBER.items()
            }
            self._key = ring.fingerprint_key
        return self._ids.get(card_fingerprint)
