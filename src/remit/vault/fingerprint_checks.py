"""What a fingerprint the core holds for a card is to that card, since fingerprints became each
account's own (vault migration 0010).

The core copied a card's fingerprint when it made a payment method, a token or a charge of it,
and the vault's re-seal has since given the card its account's own fingerprint: the core's copy
is the fingerprint every account shared. To move its copies over, the core asks about the
fingerprint it holds, and the vault answers with the account's when the one held is the card's
old one. The vault works that out by fingerprinting the card's number under the shared key,
inside the vault, and compares: it never tells a card's shared fingerprint, so a card stored
after the upgrade never gets one anywhere but the vault's memory, and the core learns nothing it
did not hold. A card whose fingerprint is the held one costs no decryption.
"""

import logging
from dataclasses import dataclass
from enum import Enum

from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import (
    FingerprintScope,
    KeyRing,
    VaultCryptoError,
    open_card,
    platform_fingerprint,
)
from remit.vault.domain import StoredCard

log = logging.getLogger(__name__)


class FingerprintCheck(Enum):
    """How a held fingerprint stands against its card's (vault.v1.FingerprintCheck)."""

    # The card's fingerprint is its account's own, and the one held.
    CURRENT = "current"
    # The one held is the card's fingerprint under the key every account shared; its
    # account's own replaced it.
    REPLACED = "replaced"
    # The card still has the shared fingerprint: not re-sealed yet.
    PENDING = "pending"
    # No answer: no such card of the account, deleted before its re-seal (its number is gone),
    # not opened, or a held fingerprint that is neither of the card's.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CheckedFingerprint:
    vault_token: str
    check: FingerprintCheck
    # The card's fingerprint in its account, for CURRENT and REPLACED.
    fingerprint: str = ""

    @property
    def opened(self) -> bool:
        """Whether telling it took the card's number: only a replaced fingerprint does."""
        return self.check is FingerprintCheck.REPLACED


def check_fingerprint(
    ring: KeyRing, account_id: str, vault_token: str, held: str, card: StoredCard | None
) -> CheckedFingerprint:
    """What `held` is to `card` (the card the token names, if any), as a card of `account_id`."""
    unknown = CheckedFingerprint(vault_token, FingerprintCheck.UNKNOWN)
    if card is None or card.account_id != account_id:
        return unknown
    current = card.summary.fingerprint
    if card.fingerprint_scope is not FingerprintScope.ACCOUNT:
        # A deleted card is never re-sealed: it keeps the shared fingerprint for good.
        if card.deleted_at is not None:
            return unknown
        return CheckedFingerprint(vault_token, FingerprintCheck.PENDING)
    if held == current:
        return CheckedFingerprint(vault_token, FingerprintCheck.CURRENT, current)
    if card.deleted_at is not None:
        return unknown
    try:
        opened = open_card(
            ring, card.token, card.account_id, card.sealed, metadata=card_metadata(card)
        )
    except VaultCryptoError as error:
        # Its token only: the error says which seal or key, never anything of the card.
        log.warning(
            "a fingerprint check could not open card %s (%s)", card.token, error.code or "tampered"
        )
        return unknown
    if platform_fingerprint(ring, opened.number) != held:
        return unknown
    return CheckedFingerprint(vault_token, FingerprintCheck.REPLACED, current)
