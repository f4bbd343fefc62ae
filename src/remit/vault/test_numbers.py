"""Which Stripe test id a stored card's number stands for, read from its fingerprint.

A test card number given as a number (Stripe.js, `/v1/tokens`, raw card data) must behave as
its test id does (`pm_card_visa` for 4242 4242 4242 4242): Radar reads a card's test id for
the documented risk of Stripe's test cards. The vault is the only holder of the number, so it
answers with the id; the number stays inside it. The stored fingerprint, a keyed hash of the
number, is compared with the fingerprints the known test numbers with the card's last four
digits have in its account, so the answer costs no decryption and no column of its own: a
card tokenized before this existed is recognised too, as is one whose fingerprint is still of
the one key every account shared (`FingerprintScope.PLATFORM`, until it is re-fingerprinted).

A fingerprint is its account's own, so no table of them serves every account; the last four
digits narrow the known test numbers to the few that can match (most to one), a few HMACs.

Test mode only: a live card is never read as a test card, whatever its number.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Final

from remit.core.secrets import Secret
from remit.vault.crypto import KeyRing, fingerprint_in_scope
from remit.vault.domain import StoredCard
from remit.vault.test_cards import TEST_ID_OF_NUMBER


def _by_last4(ids: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    grouped: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for number, test_id in ids.items():
        grouped[number[-4:]].append((number, test_id))
    return dict(grouped)


_KNOWN_BY_LAST4: Final[Mapping[str, Sequence[tuple[str, str]]]] = _by_last4(TEST_ID_OF_NUMBER)


def card_test_id(ring: KeyRing, card: StoredCard) -> str | None:
    """The test id whose number `card` holds, as its fingerprint tells; None for a live card,
    or one of no known test number."""
    if card.livemode:
        return None
    for number, test_id in _KNOWN_BY_LAST4.get(card.summary.last4, ()):
        known = fingerprint_in_scope(ring, card.fingerprint_scope, card.account_id, Secret(number))
        if known == card.summary.fingerprint:
            return test_id
    return None
