"""The digest of a card's metadata that its seals bind (`SealFormat.METADATA_BOUND`).

A card's brand, last4, fingerprint, expiry, funding, country and billing details are plain
columns of its row: the vault answers them to card-details reads and test-card resolutions, and
a forward sends the expiry and billing address to the acquirer. Its mode and creation time are
plain too (a listing hands out the creation time, and the sweep of unreferenced cards deletes
cards by it). Bound into the card's seals, a change to any of them by a write to the vault
database (two cards of one account swapping expiries, say) makes the card fail authentication
as a row given to another account does, instead of being answered or forwarded.

Every one of these columns is written when the card is stored. One operation changes any of
them since: `VaultService.update_card_details`, which sets a card's expiry and billing details
(a payment method's update in the core sends them, so that a payment sends what the payment
method says) and re-seals the card under its new metadata in the same transaction, holding its
row: opened under the binding its row held, sealed under the new one, as the background
re-seal does, so a card whose seals did not authenticate is refused, never sealed over. The
others are never changed, and shredding a card leaves them as they were. A column added to
this set, or another that comes to be updated, needs its update to re-seal the card in the
same transaction too.

The encoding is canonical and unambiguous: each field's name and value, in a fixed order, each
after its length in bytes (8 bytes, big-endian), so no two different sets of values encode
alike ("ab" + "c" is not "a" + "bc"); the billing details as JSON with sorted keys and no
spacing; the creation time as whole microseconds since the epoch (PostgreSQL's precision),
whatever time zone it is read in. SHA-256 of it, after a label naming this encoding, is the
digest: a fixed 32 bytes whatever the billing details hold.
"""

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from remit.vault.domain import CardSummary, StoredCard

_LABEL: Final = b"remit-vault/card-metadata/v1\x00"
_LENGTH_BYTES: Final = 8
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def encode_fields(fields: list[tuple[str, str]]) -> bytes:
    """Each name and value after its length in bytes: no two lists encode alike."""
    encoded = bytearray()
    for name, value in fields:
        for part in (name.encode(), value.encode()):
            encoded += len(part).to_bytes(_LENGTH_BYTES, "big")
            encoded += part
    return bytes(encoded)


def _canonical_json(value: Mapping[str, object]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _microseconds(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a card's creation time is bound with its time zone")
    return str((moment - _EPOCH) // _MICROSECOND)


def metadata_fields(
    *,
    livemode: bool,
    summary: CardSummary,
    billing_details: Mapping[str, object],
    created_at: datetime,
) -> list[tuple[str, str]]:
    """The bound columns of a card, by name, in the order they are encoded."""
    return [
        ("livemode", "true" if livemode else "false"),
        ("brand", summary.brand.value),
        ("last4", summary.last4),
        ("exp_month", str(summary.exp_month)),
        ("exp_year", str(summary.exp_year)),
        ("fingerprint", summary.fingerprint),
        ("funding", summary.funding.value),
        ("country", summary.country),
        ("billing_details", _canonical_json(billing_details)),
        ("created_at", _microseconds(created_at)),
    ]


def metadata_digest(
    *,
    livemode: bool,
    summary: CardSummary,
    billing_details: Mapping[str, object],
    created_at: datetime,
) -> bytes:
    """SHA-256 of the card's bound columns, canonically encoded: what its seals bind."""
    fields = metadata_fields(
        livemode=livemode, summary=summary, billing_details=billing_details, created_at=created_at
    )
    return hashlib.sha256(_LABEL + encode_fields(fields)).digest()


def card_metadata(card: StoredCard) -> bytes:
    """The digest of `card`'s metadata as its row holds it."""
    return metadata_digest(
        livemode=card.livemode,
        summary=card.summary,
        billing_details=card.billing_details,
        created_at=card.created_at,
    )
