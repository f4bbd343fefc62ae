"""Envelope encryption of card data: AES-256-GCM under a fresh data key per card.

Each card gets its own random 256-bit data key. The number and the CVC are sealed under it, and
the data key itself is sealed ("wrapped") under a named, versioned key-encrypting key (KEK) that
never enters the database. The card's vault token is bound into every seal as associated data,
so a ciphertext copied onto another card's row fails authentication instead of decrypting to
someone else's number. Re-wrapping touches only the data key: card numbers stay sealed.
"""

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
FINGERPRINT_LENGTH: Final = 16


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


def retired_key(version: int, minimum: int) -> VaultCryptoError:
    return VaultCryptoError(
        message=f"Key version {version} is retired (minimum decryption version is {minimum}).",
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="api_error",
        code="vault_key_retired",
    )


def unknown_key(name: str, version: int) -> VaultCryptoError:
    return VaultCryptoError(
        message=f"The vault has no key {name!r} version {version}.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
        code="vault_key_missing",
    )


@dataclass(frozen=True)
class KeyVersion:
    version: int
    material: bytes
    created_at: datetime

    def __repr__(self) -> str:
        return f"KeyVersion(version={self.version}, created_at={self.created_at.isoformat()})"


@dataclass(frozen=True)
class KeyRing:
    """Every version of the KEK, which one wraps new data keys, and the oldest still usable."""

    name: str
    versions: dict[int, KeyVersion]
    current_version: int
    minimum_decryption_version: int
    fingerprint_key: bytes

    def __repr__(self) -> str:
        return (
            f"KeyRing(name={self.name!r}, versions={sorted(self.versions)}, "
            f"current={self.current_version}, minimum={self.minimum_decryption_version})"
        )

    def key_for_decryption(self, version: int) -> KeyVersion:
        if version < self.minimum_decryption_version:
            raise retired_key(version, self.minimum_decryption_version)
        key = self.versions.get(version)
        if key is None:
            raise unknown_key(self.name, version)
        return key

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


def _data_key_ad(token: str, name: str, version: int) -> bytes:
    return f"remit-vault/data-key/{token}/{name}/{version}".encode()


def _field_ad(token: str, field: str) -> bytes:
    return f"remit-vault/{field}/{token}".encode()


def seal_card(
    ring: KeyRing, token: str, number: Secret[str], cvc: Secret[str] | None
) -> SealedCard:
    data_key = AESGCM.generate_key(bit_length=256)
    kek = ring.current
    return SealedCard(
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=_seal(kek.material, data_key, _data_key_ad(token, ring.name, kek.version)),
        number_ciphertext=_seal(data_key, number.reveal().encode(), _field_ad(token, "number")),
        cvc_ciphertext=None
        if cvc is None
        else _seal(data_key, cvc.reveal().encode(), _field_ad(token, "cvc")),
    )


def _unwrap(ring: KeyRing, token: str, sealed: SealedCard) -> bytes:
    if sealed.kek_name != ring.name:
        raise unknown_key(sealed.kek_name, sealed.kek_version)
    kek = ring.key_for_decryption(sealed.kek_version)
    return _open(
        kek.material,
        sealed.wrapped_data_key,
        _data_key_ad(token, sealed.kek_name, sealed.kek_version),
    )


@dataclass(frozen=True)
class OpenedCard:
    number: Secret[str]
    cvc: Secret[str] | None


def open_card(ring: KeyRing, token: str, sealed: SealedCard) -> OpenedCard:
    data_key = _unwrap(ring, token, sealed)
    number = _open(data_key, sealed.number_ciphertext, _field_ad(token, "number"))
    cvc = None
    if sealed.cvc_ciphertext is not None:
        cvc = Secret(_open(data_key, sealed.cvc_ciphertext, _field_ad(token, "cvc")).decode())
    return OpenedCard(number=Secret(number.decode()), cvc=cvc)


def rewrap(ring: KeyRing, token: str, sealed: SealedCard) -> SealedCard:
    """The same card with its data key wrapped under the current KEK version."""
    data_key = _unwrap(ring, token, sealed)
    kek = ring.current
    return replace(
        sealed,
        kek_name=ring.name,
        kek_version=kek.version,
        wrapped_data_key=_seal(kek.material, data_key, _data_key_ad(token, ring.name, kek.version)),
    )


_ALNUM: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def fingerprint(ring: KeyRing, number: Secret[str]) -> str:
    """A keyed hash (PCI DSS 3.5.1.1: never a plain hash) rendered like Stripe's 16 characters."""
    digest = hmac.new(ring.fingerprint_key, number.reveal().encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest, "big")
    chars = []
    for _ in range(FINGERPRINT_LENGTH):
        value, index = divmod(value, len(_ALNUM))
        chars.append(_ALNUM[index])
    return "".join(chars)


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
