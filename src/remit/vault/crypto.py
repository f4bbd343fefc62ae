"""Envelope encryption of card data: AES-256-GCM under a fresh data key per card.

Each card gets its own random 256-bit data key. The number is sealed under it, and the data key
itself is sealed ("wrapped") under a named, versioned key-encrypting key (KEK) that never enters
the database. The card's vault token, the account that owns it and a digest of its metadata
(`remit.vault.card_metadata`: brand, last4, fingerprint, expiry, funding, country, billing
details, mode and creation time, the plain columns the vault hands out and forwards) are bound
into every seal as associated data (`SealFormat.METADATA_BOUND`): a ciphertext copied onto
another card's row, a row given to another account, or a row whose expiry or billing details
were swapped with another card's by a write to the vault database, fails authentication instead
of decrypting to someone else's number or answering with someone else's details. Re-wrapping
touches only the data key: card numbers stay sealed.

Cards stored before the metadata was bound (`SealFormat.ACCOUNT_BOUND`, the account and token)
and before the account was (`SealFormat.TOKEN_BOUND`, the token alone) still open. Re-sealing
one (`seal_card` with what `open_card` gave) moves it to a fresh data key and the newest
format: every copy of its old row (the WAL, a backup) then depends on the old data key, which
no live row holds any more, and is beyond use once the KEK version that wrapped it is removed.
A re-wrap alone cannot do that, as it keeps the data key.

A CVC is not sealed under the card's data key, which lives as long as the card: a copy of its
ciphertext left in the WAL, a backup or a page's free space would open for as long as the card
exists, long after the CVC was destroyed (PCI DSS 3.3.1 allows it until the authorization).
It is sealed under a CVC key instead, one per hour (`CvcKey`), kept beside the KEKs and deleted
once every CVC sealed under it has expired: that deletion puts every copy of those CVCs beyond
use. The sealed CVC names its key's hour after a marker (`CVC_KEY_MARKER`); one sealed before
CVC keys existed, under the data key, has no marker and still opens until it expires.
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
FINGERPRINT_LENGTH: Final = 16
TAG_BYTES: Final = 16
# SHA-256 (`remit.vault.card_metadata.metadata_digest`).
METADATA_DIGEST_BYTES: Final = 32

# Every CVC stored within one hour is sealed under that hour's CVC key.
CVC_KEY_PERIOD: Final = timedelta(hours=1)
# A CVC sealed under a CVC key: this marker, the key's hour (`_CVC_HOUR_BYTES`, big-endian), the
# nonce, the ciphertext. One sealed under the card's data key (before CVC keys) is the nonce
# and ciphertext of a 3- or 4-digit CVC, at most `_LEGACY_CVC_MAX_BYTES` long, which a marked
# one never is (39 bytes or more): one whose random nonce happens to begin with the marker is
# still told apart, by its length.
CVC_KEY_MARKER: Final = b"cvk1"
_CVC_HOUR_BYTES: Final = 4
_CVC_HEADER_BYTES: Final = len(CVC_KEY_MARKER) + _CVC_HOUR_BYTES
_LEGACY_CVC_MAX_BYTES: Final = NONCE_BYTES + 4 + TAG_BYTES


class SealFormat(IntEnum):
    """What a card's seals are bound to; stored with each card (`cards.seal_format`)."""

    # A value read from a row that names no format this vault knows: written there by hand (the
    # vault never writes it, and vault migrations 0007 and 0008 refuse it since). Nothing is
    # sealed this way and nothing opens: a card claiming it is refused as tampered, as one
    # whose seals do not authenticate is, rather than failing the read.
    UNRECOGNIZED = 0
    # Before vault migration 0006: the token alone.
    TOKEN_BOUND = 1
    # Before vault migration 0008: the account that owns the card and its token.
    ACCOUNT_BOUND = 2
    # The account, the token and the digest of the card's metadata (`remit.vault.card_metadata`).
    METADATA_BOUND = 3

    @classmethod
    def stored(cls, value: int) -> "SealFormat":
        """The format a row's `seal_format` names; `UNRECOGNIZED` for any other value."""
        try:
            format_ = cls(value)
        except ValueError:
            return cls.UNRECOGNIZED
        return format_


class VaultCryptoError(RemitError):
    """Root of the vault's cryptographic failures. Messages never include key or card data."""


def tampered() -> VaultCryptoError:
    return VaultCryptoError(
        message="The stored card data failed authentication and was not decrypted.",
        # Definite: nothing was decrypted, so nothing was forwarded (the caller need not look
        # the reference up at the network, and must not count it as the network failing).
        kind=ErrorKind.DATA_LOSS,
        error_type="api_error",
        code="vault_ciphertext_invalid",
    )


@dataclass(eq=False)
class KeyUnavailableError(VaultCryptoError):
    """The KEK version a card's data key is wrapped under cannot be used here: it is retired
    (below the minimum decryption version), missing from the key ring, or of another ring.
    Nothing was tried, so this says nothing of the card's seals: unlike `tampered`, it is no
    sign of a write to the vault database."""

    key_name: str = ""
    key_version: int = 0


# The code of `retired_key`: the core ends an attempt on it (`remit.payments.network`).
KEY_RETIRED_CODE: Final = "vault_key_retired"


def retired_key(name: str, version: int, minimum: int) -> KeyUnavailableError:
    return KeyUnavailableError(
        message=f"Key version {version} is retired (minimum decryption version is {minimum}).",
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code=KEY_RETIRED_CODE,
        key_name=name,
        key_version=version,
    )


# The code of `unknown_key`: the core holds an attempt on it, for the version to come back, until
# an operator declares the version lost (`remit.vault.lost_keys`).
KEY_MISSING_CODE: Final = "vault_key_missing"


def unknown_key(name: str, version: int) -> KeyUnavailableError:
    return KeyUnavailableError(
        message=f"The vault has no key {name!r} version {version}.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
        code=KEY_MISSING_CODE,
        key_name=name,
        key_version=version,
    )


@dataclass(frozen=True)
class KeyVersion:
    version: int
    material: bytes
    created_at: datetime

    def __repr__(self) -> str:
        return f"KeyVersion(version={self.version}, created_at={self.created_at.isoformat()})"


def cvc_key_hour(moment: datetime) -> int:
    """The hour `moment` falls in, counted from the Unix epoch: which CVC key seals a CVC
    stored then."""
    return int(moment.timestamp()) // int(CVC_KEY_PERIOD.total_seconds())


def cvc_key_hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * CVC_KEY_PERIOD.total_seconds(), UTC)


@dataclass(frozen=True)
class CvcKey:
    """The key that seals the CVCs stored within one hour (`cvc_key_hour`)."""

    hour: int
    material: bytes
    created_at: datetime

    def __repr__(self) -> str:
        return f"CvcKey(hour={self.hour}, created_at={self.created_at.isoformat()})"

    def last_cvc_expiry(self, retention: timedelta) -> datetime:
        """When the last CVC this key can have sealed expires: one stored at the end of its
        hour."""
        return cvc_key_hour_start(self.hour + 1) + retention


@dataclass(frozen=True)
class KeyRing:
    """Every version of the KEK, which one wraps new data keys, and the oldest still usable;
    and the CVC keys of the hours whose CVCs may not have expired yet."""

    name: str
    versions: dict[int, KeyVersion]
    current_version: int
    minimum_decryption_version: int
    fingerprint_key: bytes
    cvc_keys: dict[int, CvcKey] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"KeyRing(name={self.name!r}, versions={sorted(self.versions)}, "
            f"current={self.current_version}, minimum={self.minimum_decryption_version}, "
            f"cvc_key_hours={sorted(self.cvc_keys)})"
        )

    def key_for_decryption(self, version: int) -> KeyVersion:
        if version < self.minimum_decryption_version:
            raise retired_key(self.name, version, self.minimum_decryption_version)
        key = self.versions.get(version)
        if key is None:
            raise unknown_key(self.name, version)
        return key

    def never_had(self, name: str, version: int) -> bool:
        """Whether key `name` version `version` was never a version of this ring: of another
        ring, or outside the versions it has numbered (from 1 up to the current one, never
        reused: `without_version`). No retirement or removal of a key makes a card name such a
        version: only a card written by another vault, or a hand-written row, does."""
        return name != self.name or not 1 <= version <= self.current_version

    @property
    def current(self) -> KeyVersion:
        return self.versions[self.current_version]

    def with_new_version(self, created_at: datetime) -> "KeyRing":
        version = max(self.versions) + 1
        added = KeyVersion(version, AESGCM.generate_key(bit_length=256), created_at)
        return replace(self, versions={**self.versions, version: added}, current_version=version)

    def with_minimum(self, minimum: int) -> "KeyRing":
        return replace(self, minimum_decryption_version=minimum)

    def without_version(self, version: int) -> "KeyRing":
        """The ring without `version`'s key material. Version numbers are never reused:
        `with_new_version` counts on from the highest version left, and only versions below
        the current one are ever removed (retired ones: the service checks), so the highest
        stays."""
        if version == self.current_version:
            raise ValueError("the current key version cannot be removed")
        return replace(self, versions={v: k for v, k in self.versions.items() if v != version})

    def with_cvc_keys(self, hours: Iterable[int], created_at: datetime) -> "KeyRing":
        """The ring with a new CVC key for each of `hours` it has none for."""
        added = {
            hour: CvcKey(hour, AESGCM.generate_key(bit_length=256), created_at)
            for hour in hours
            if hour not in self.cvc_keys
        }
        return replace(self, cvc_keys={**self.cvc_keys, **added})

    def without_cvc_keys(self, hours: Iterable[int]) -> "KeyRing":
        gone = set(hours)
        return replace(self, cvc_keys={h: k for h, k in self.cvc_keys.items() if h not in gone})


def new_key_ring(name: str, created_at: datetime) -> KeyRing:
    first = KeyVersion(1, AESGCM.generate_key(bit_length=256), created_at)
    return KeyRing(
        name=name,
        versions={1: first},
        current_version=1,
        minimum_decryption_version=1,
        fingerprint_key=os.urandom(KEY_BYTES),
    )


@dataclass(frozen=True)
class SealedCard:
    """What the database holds for one card: nothing in it is readable without the KEK."""

    kek_name: str
    kek_version: int
    wrapped_data_key: bytes
    number_ciphertext: bytes
    cvc_ciphertext: bytes | None
    seal_format: SealFormat


def _seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def _open(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    if len(sealed) <= NONCE_BYTES:
        raise tampered()
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag:
        raise tampered() from None


@dataclass(frozen=True)
class CardBinding:
    """Whose card a sealed card is, and what its row says of it, as its seals' associated data
    names them. `metadata` is the digest of the card's metadata (`remit.vault.card_metadata`),
    bound by `SealFormat.METADATA_BOUND` alone: the earlier formats ignore it."""

    token: str
    account_id: str
    seal_format: SealFormat
    metadata: bytes = b""

    def associated(self, what: str, *more: object) -> bytes:
        parts = [str(part) for part in more]
        if self.seal_format is SealFormat.TOKEN_BOUND:
            return "/".join(["remit-vault", what, self.token, *parts]).encode()
        if self.seal_format is SealFormat.ACCOUNT_BOUND:
            return _length_prefixed("remit-vault/v2", what, [self.account_id, self.token, *parts])
        if self.seal_format is not SealFormat.METADATA_BOUND:
            # A format written by hand: no seal is bound to it, so none can authenticate.
            raise tampered()
        if len(self.metadata) != METADATA_DIGEST_BYTES:
            # A caller that forgot the card's metadata: a bug, never a card's fault.
            raise ValueError("a metadata-bound seal needs the digest of the card's metadata")
        named = [self.account_id, self.token, self.metadata.hex(), *parts]
        return _length_prefixed("remit-vault/v3", what, named)


def _length_prefixed(prefix: str, what: str, parts: list[str]) -> bytes:
    # Each part after its length: an account id may hold "/" (the caller names it), and
    # account "a/b" with token "c" must not read the same as account "a" with token "b/c".
    named = "".join(f"/{len(part)}:{part}" for part in parts)
    return f"{prefix}/{what}{named}".encode()


def _data_key_ad(binding: CardBinding, name: str, version: int) -> bytes:
    return binding.associated("data-key", name, version)


def seal_card(
    ring: KeyRing,
    token: str,
    account_id: str,
    number: Secret[str],
    cvc: Secret[str] | None,
    cvc_key: CvcKey | None = None,
    *,
    metadata: bytes,
) -> SealedCard:
    """The card sealed for storage under a fresh data key, bound to its token, account and the
    digest of its metadata (`remit.vault.card_metadata`); its CVC, if it has one, under
    `cvc_key`."""
    if cvc is not None and cvc_key is None:
        raise ValueError("a CVC is sealed under a CVC key, never under the card's data key")
    binding = CardBinding(token, account_id, SealFormat.METADATA_BOUND, metadata)
    data_key = AESGCM.generate_key(bit_length=256)
    kek = ring.current
    return SealedCard(
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=_seal(
            kek.material, data_key, _data_key_ad(binding, ring.name, kek.version)
        ),
        number_ciphertext=_seal(data_key, number.reveal().encode(), binding.associated("number")),
        cvc_ciphertext=None if cvc is None or cvc_key is None else seal_cvc(cvc_key, binding, cvc),
        seal_format=binding.seal_format,
    )


def seal_cvc(key: CvcKey, binding: CardBinding, cvc: Secret[str]) -> bytes:
    header = CVC_KEY_MARKER + key.hour.to_bytes(_CVC_HOUR_BYTES, "big")
    return header + _seal(key.material, cvc.reveal().encode(), binding.associated("cvc", key.hour))


def sealed_cvc_hour(sealed_cvc: bytes) -> int | None:
    """The hour of the CVC key `sealed_cvc` is sealed under; None if it is sealed under its
    card's data key, as CVCs were before CVC keys."""
    if len(sealed_cvc) <= _LEGACY_CVC_MAX_BYTES or not sealed_cvc.startswith(CVC_KEY_MARKER):
        return None
    return int.from_bytes(sealed_cvc[len(CVC_KEY_MARKER) : _CVC_HEADER_BYTES], "big")


def _unwrap(ring: KeyRing, binding: CardBinding, sealed: SealedCard) -> bytes:
    if sealed.kek_name != ring.name:
        raise unknown_key(sealed.kek_name, sealed.kek_version)
    kek = ring.key_for_decryption(sealed.kek_version)
    return _open(
        kek.material,
        sealed.wrapped_data_key,
        _data_key_ad(binding, sealed.kek_name, sealed.kek_version),
    )


def verify_binding(
    ring: KeyRing, token: str, account_id: str, sealed: SealedCard, *, metadata: bytes
) -> None:
    """Check that the card's seals name `token`, `account_id` and (metadata-bound) `metadata`,
    without decrypting its number or CVC: its data key must unwrap under the associated data
    its format binds (one AES-GCM open of 32 bytes). The data key is dropped at once; nothing
    is kept. Raises as `open_card` does: a row given to another account, whose metadata was
    changed, or whose data key was copied from another card's row, fails authentication.

    An account-bound card (`SealFormat.ACCOUNT_BOUND`) names no metadata: its metadata is not
    checked until the background re-seal binds what its row then holds.

    A card sealed the token-bound way (`SealFormat.TOKEN_BOUND`) names no account: only its
    token is checked, so such a row given to another account still passes, until the
    background re-seal binds it to the account it then belongs to. A row whose format was
    changed by hand to an earlier format fails, as its data key was wrapped another way."""
    _unwrap(ring, CardBinding(token, account_id, sealed.seal_format, metadata), sealed)


@dataclass(frozen=True)
class OpenedCard:
    number: Secret[str]
    cvc: Secret[str] | None


def open_card(
    ring: KeyRing, token: str, account_id: str, sealed: SealedCard, *, metadata: bytes
) -> OpenedCard:
    """The card's number and CVC. The CVC is None if the card has none, or if the CVC key it
    was sealed under is deleted: every CVC sealed under it had expired by then. A card whose
    seals name another account than `account_id` (its row given to another account), or other
    metadata than `metadata` (its row's plain columns changed), fails authentication, as
    tampering does."""
    binding = CardBinding(token, account_id, sealed.seal_format, metadata)
    data_key = _unwrap(ring, binding, sealed)
    number = _open(data_key, sealed.number_ciphertext, binding.associated("number"))
    cvc = None
    if sealed.cvc_ciphertext is not None:
        cvc = _open_cvc(ring, binding, data_key, sealed.cvc_ciphertext)
    return OpenedCard(number=Secret(number.decode()), cvc=cvc)


def _open_cvc(
    ring: KeyRing, binding: CardBinding, data_key: bytes | None, sealed_cvc: bytes
) -> Secret[str] | None:
    hour = sealed_cvc_hour(sealed_cvc)
    if hour is None:
        # Sealed before CVC keys, at most one CVC retention before that version started; so
        # only in a card sealed the token-bound way (a re-seal puts it under a CVC key).
        if data_key is None or binding.seal_format is not SealFormat.TOKEN_BOUND:
            raise tampered()
        return Secret(_open(data_key, sealed_cvc, binding.associated("cvc")).decode())
    key = ring.cvc_keys.get(hour)
    if key is None:
        return None
    sealed = sealed_cvc[_CVC_HEADER_BYTES:]
    return Secret(_open(key.material, sealed, binding.associated("cvc", hour)).decode())


def open_cvc_under_cvc_key(
    ring: KeyRing, binding: CardBinding, sealed_cvc: bytes
) -> Secret[str] | None:
    """A CVC sealed under a CVC key for `binding`, opened without its card's data key (None
    once that key is deleted); one sealed under the data key is refused as tampered."""
    return _open_cvc(ring, binding, None, sealed_cvc)


def rewrap(
    ring: KeyRing, token: str, account_id: str, sealed: SealedCard, *, metadata: bytes
) -> SealedCard:
    """The same card with its data key wrapped under the current KEK version: under the same
    binding, so a card whose seals do not name `token`, `account_id` and `metadata` is
    refused as tampered, not re-wrapped."""
    binding = CardBinding(token, account_id, sealed.seal_format, metadata)
    data_key = _unwrap(ring, binding, sealed)
    kek = ring.current
    return replace(
        sealed,
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=_seal(
            kek.material, data_key, _data_key_ad(binding, ring.name, kek.version)
        ),
    )


_ALNUM: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_FINGERPRINT_KEY_INFO: Final = "remit-vault/card-fingerprint/account/v1"


class FingerprintScope(IntEnum):
    """Whose fingerprints a card's is comparable with; stored with each card
    (`cards.fingerprint_scope`, vault migration 0010)."""

    # Before vault migration 0010: one key for every account, so the same number had the same
    # fingerprint in all of them, and any account could learn a number's fingerprint (store it,
    # read the card's) and find the cards of other accounts bearing it. Re-fingerprinted by
    # the background re-seal (`VaultService.reseal_all`).
    PLATFORM = 1
    # Under a key of the card's account alone (`fingerprint`), as Stripe's: "if the same card
    # is added to two different accounts, they will have different fingerprints".
    ACCOUNT = 2


def _account_fingerprint_key(ring: KeyRing, account_id: str) -> bytes:
    """The account's own fingerprint key: HKDF-SHA256 of the ring's fingerprint key, its info
    naming this use and the account (after its length: no account id is a prefix of another's
    info). The ring's fingerprint key never changes (rotations add KEK versions only), so
    neither does an account's, nor its cards' fingerprints."""
    info = f"{_FINGERPRINT_KEY_INFO}/{len(account_id)}:{account_id}".encode()
    derive = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info)
    return derive.derive(ring.fingerprint_key)


def fingerprint(ring: KeyRing, account_id: str, number: Secret[str]) -> str:
    """The card's fingerprint in `account_id`: a keyed hash (PCI DSS 3.5.1.1: never a plain
    hash) under the account's own key, rendered like Stripe's 16 characters. The same number
    has the same fingerprint within an account, and unrelated ones in two accounts: no
    account can link its cards to another's, nor learn what another's fingerprints are."""
    return _rendered(_keyed_hash(_account_fingerprint_key(ring, account_id), number))


def platform_fingerprint(ring: KeyRing, number: Secret[str]) -> str:
    """The fingerprint cards had before vault migration 0010 (`FingerprintScope.PLATFORM`):
    the same in every account. Only to recognise a card not yet re-fingerprinted; never
    given to a new card."""
    return _rendered(_keyed_hash(ring.fingerprint_key, number))


def _keyed_hash(key: bytes, number: Secret[str]) -> bytes:
    return hmac.new(key, number.reveal().encode(), hashlib.sha256).digest()


def _rendered(digest: bytes) -> str:
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(FINGERPRINT_LENGTH):
        value, index = divmod(value, len(_ALNUM))
        chars.append(_ALNUM[index])
    return "".join(chars)


def fingerprint_in_scope(
    ring: KeyRing, scope: FingerprintScope, account_id: str, number: Secret[str]
) -> str:
    """`number`'s fingerprint as a card of `account_id` whose fingerprint is of `scope` has
    it."""
    if scope is FingerprintScope.ACCOUNT:
        return fingerprint(ring, account_id, number)
    return platform_fingerprint(ring, number)


def encode_key(material: bytes) -> str:
    return base64.b64encode(material).decode()


def decode_key(text: str, what: str) -> bytes:
    try:
        material = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{what} is not valid base64") from None
    if len(material) != KEY_BYTES:
        raise ValueError(f"{what} must be {KEY_BYTES} bytes, got {len(material)}")
    return material
