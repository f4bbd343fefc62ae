"""Which key set a vault database's cards are sealed under, checked as the vault starts.

The keys live in a file beside the vault process, the cards in its database. Started with
another key file than its database's (a mistyped REMIT_VAULT_KEY_FILE, a volume not mounted),
the vault made a new key set and served with it: every stored card failed to decrypt, new
cards were sealed under keys lost once the right file came back, and fingerprints changed. So
the database records a check value of its key set when the keys are first made, and a vault
refuses to start with a key set that does not match it, or to make one while the database
holds cards or a recorded value. It also refuses a key set older than its cards (one without
the newest key version they are wrapped under): rotating it would make that version again,
with other key material.

The check value is an HMAC of a fixed label under the key set's fingerprint key: the same for
the key set's whole life (rotations add key versions, never a fingerprint key), another for
any other key set, and telling nothing about any key.
"""

import hashlib
import hmac
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import ConfigError
from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import KeyRing, SealFormat, VaultCryptoError, rewrap
from remit.vault.keystore import (
    KEY_FILE_ENV,
    KEY_RING_NAME,
    KEYS_ENV,
    FileKeyStore,
    KeyFileMissingError,
    KeyStore,
    KeyStoreError,
    key_store_from_env,
)
from remit.vault.repository import SqlVaultRepository

_LABEL: Final = b"remit-vault/key-check-value"
# Of the check values, how much a refusal shows: enough to tell key files apart.
_SHOWN: Final = 8


def key_check_value(ring: KeyRing) -> str:
    return hmac.new(ring.fingerprint_key, _LABEL, hashlib.sha256).hexdigest()


def _source(store: KeyStore) -> str:
    return f"the key file {store.path}" if isinstance(store, FileKeyStore) else KEYS_ENV


async def open_key_store(
    environ: dict[str, str] | os._Environ[str], data_dir: Path, engine: AsyncEngine
) -> KeyStore:
    """The vault's keys, once they are seen to be those its database's cards are sealed
    under; made on the first start, and their check value recorded. A `ConfigError` saying
    what is wrong, in one line, if they are not."""
    async with engine.begin() as db:
        repo = SqlVaultRepository(db)
        recorded = await repo.key_check_value(KEY_RING_NAME)
        in_use = recorded is not None or await repo.holds_cards()
        try:
            store = key_store_from_env(environ, data_dir, create=not in_use)
            ring = store.load()
        except KeyFileMissingError as error:
            raise ConfigError(
                f"{error}, but the vault database is used with a key set already, and a new "
                f"one would leave its cards unreadable; set {KEY_FILE_ENV} to that key set's "
                "file (is its volume mounted?)"
            ) from None
        except KeyStoreError as error:
            raise ConfigError(str(error)) from None
        found = key_check_value(ring)
        if recorded is None:
            await _check_it_unwraps_the_newest_card(repo, ring, _source(store))
            recorded = await repo.record_key_check_value(KEY_RING_NAME, found, datetime.now(UTC))
        if recorded != found:
            raise ConfigError(
                f"the vault keys in {_source(store)} (key check value {found[:_SHOWN]}) are not "
                f"the key set the vault database is used with ({recorded[:_SHOWN]}); set "
                f"{KEY_FILE_ENV} to that key set's file (is its volume mounted?)"
            )
        newest = await repo.newest_live_key_version()
        if newest is not None and newest > max(ring.versions):
            raise ConfigError(
                f"the vault database holds cards wrapped under key version {newest}, which "
                f"{_source(store)} does not have (its newest is {max(ring.versions)}): it is an "
                "older copy of the vault's keys; restore the newest"
            )
    return store


async def _check_it_unwraps_the_newest_card(
    repo: SqlVaultRepository, ring: KeyRing, source: str
) -> None:
    """Before a database that holds cards (stored before check values were recorded) gets
    one, its key set must be the one they are sealed under: the newest card's data key must
    unwrap (the data key only; no card data is decrypted)."""
    card = await repo.newest_live_card()
    if card is None:
        return
    if card.sealed.seal_format is SealFormat.UNRECOGNIZED:
        # No seal is bound to such a format, so no key set would unwrap it: "do not unwrap"
        # would send the operator after a key file that may well be the right one.
        raise ConfigError(
            f"the vault database's newest card ({card.token}) names a seal format this vault "
            "does not know (written by a newer vault version, or by hand), so the vault keys "
            f"in {source} cannot be checked against it; start the vault version that wrote "
            "it, or mend the card's seal_format"
        )
    try:
        rewrap(ring, card.token, card.account_id, card.sealed, metadata=card_metadata(card))
    except VaultCryptoError:
        raise ConfigError(
            f"the vault keys in {source} do not unwrap the data key of the vault database's "
            f"newest card ({card.token}); set {KEY_FILE_ENV} to the key file its cards are "
            "sealed under"
        ) from None
