"""Where the vault's key material lives: a 0600 key file of the vault process, or its
environment (`REMIT_VAULT_KEYS`). Never the database, never any other process.

The file is created on the vault's first start. Rotation, retirement and the removal of a
retired version rewrite it atomically under a lock, and every read checks its identity, so
several vault processes sharing one key file see a change as soon as one of them makes it.
A rewrite is durable (the file and its directory synced) before that lock is released, and a
store reads a changed file only under the lock: no data key is wrapped under a key version a
power loss could still take back. The file as it was before the last rewrite stays beside it
(`keys.json.prev`, 0600) for an operator to go back to, except after a removal, whose key
material must not outlive it.
Each file is written under a temporary name beside it, then renamed into place
(`remit.core.atomic_file`); a vault killed in between leaves that temporary file, which holds
key material, behind. The next to write the file, or to open it as a vault starts, removes
those files (under the lock, which every writer holds while its own exists), and only those.
Keys given through the environment are read-only: rotating them is an operator's job (add a
version to the variable, restart).

The CVC keys (`remit.vault.crypto.CvcKey`) are kept beside the KEKs, in the same file: the
vault adds the next hour's and deletes those whose CVCs have all expired as it runs
(`save_cvc_keys`), a key reaching the file, durably, before any CVC is sealed under it. Where
the keys come from the environment, the CVC keys live in the process's memory only.
"""

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

from remit.core.atomic_file import AtomicFile, stale_temporaries
from remit.vault.crypto import (
    CvcKey,
    KeyRing,
    KeyVersion,
    decode_key,
    encode_key,
    new_key_ring,
)

KEY_RING_NAME: Final = "card-kek"
KEYS_ENV: Final = "REMIT_VAULT_KEYS"
KEY_FILE_ENV: Final = "REMIT_VAULT_KEY_FILE"
FORMAT_VERSION: Final = 1


class KeyStoreError(Exception):
    """The key material is missing, malformed, exposed, or cannot be changed here."""


class KeyFileMissingError(KeyStoreError):
    """The key file is not where the settings say it is."""


class KeyStore(Protocol):
    writable: bool

    def load(self) -> KeyRing: ...
    def save(self, ring: KeyRing) -> None: ...
    def locked(self) -> contextlib.AbstractContextManager[None]: ...
    # Under `locked`, after a `load`: the ring as loaded, with these CVC keys.
    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None: ...


def ring_to_json(ring: KeyRing) -> str:
    return json.dumps(
        {
            "format": FORMAT_VERSION,
            "name": ring.name,
            "current_version": ring.current_version,
            "minimum_decryption_version": ring.minimum_decryption_version,
            "fingerprint_key": encode_key(ring.fingerprint_key),
            "versions": [
                {
                    "version": key.version,
                    "key": encode_key(key.material),
                    "created": key.created_at.isoformat(),
                }
                for key in sorted(ring.versions.values(), key=lambda key: key.version)
            ],
            "cvc_keys": [
                {
                    "hour": key.hour,
                    "key": encode_key(key.material),
                    "created": key.created_at.isoformat(),
                }
                for key in sorted(ring.cvc_keys.values(), key=lambda key: key.hour)
            ],
        },
        indent=2,
    )


def ring_from_json(text: str, source: str) -> KeyRing:
    try:
        raw = json.loads(text)
        versions = {
            int(entry["version"]): KeyVersion(
                version=int(entry["version"]),
                material=decode_key(entry["key"], f"{source}: key version {entry['version']}"),
                created_at=datetime.fromisoformat(entry["created"]),
            )
            for entry in raw["versions"]
        }
        # Absent from the files of versions before CVC keys.
        cvc_keys = {
            int(entry["hour"]): CvcKey(
                hour=int(entry["hour"]),
                material=decode_key(entry["key"], f"{source}: CVC key {entry['hour']}"),
                created_at=datetime.fromisoformat(entry["created"]),
            )
            for entry in raw.get("cvc_keys", [])
        }
        ring = KeyRing(
            name=str(raw["name"]),
            versions=versions,
            current_version=int(raw["current_version"]),
            minimum_decryption_version=int(raw["minimum_decryption_version"]),
            fingerprint_key=decode_key(raw["fingerprint_key"], f"{source}: fingerprint_key"),
            cvc_keys=cvc_keys,
        )
    except (ValueError, KeyError, TypeError) as error:
        # The message must not quote the text: it is key material.
        raise KeyStoreError(
            f"{source} is not a valid vault key set: {type(error).__name__}"
        ) from None
    if ring.current_version not in versions:
        raise KeyStoreError(f"{source}: current_version {ring.current_version} has no key")
    if not 1 <= ring.minimum_decryption_version <= ring.current_version:
        raise KeyStoreError(f"{source}: minimum_decryption_version is out of range")
    return ring


@dataclass
class FileKeyStore:
    path: Path
    writable: bool = True
    _cached: tuple[tuple[int, ...], KeyRing] | None = None
    # This store holds the lock (`locked`): its reads must not wait for it.
    _holding_lock: bool = False

    def ensure_exists(self) -> None:
        """Create the key file with a first key version unless it exists already."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.locked():
            if self.path.exists():
                return
            self._write(new_key_ring(KEY_RING_NAME, datetime.now(UTC)))

    def load(self) -> KeyRing:
        version = self._file_version()
        if self._cached is not None and self._cached[0] == version:
            return self._cached[1]
        # Changed since it was read: a writer, here or in another vault process, renames the
        # new file into place before it syncs the directory that makes the rename survive a
        # power loss, and holds the lock until it has. Read under the lock, a new key version
        # is never used before it is on disk.
        with contextlib.nullcontext() if self._holding_lock else self._lock(fcntl.LOCK_SH):
            version = self._file_version()
            ring = ring_from_json(self.path.read_text(), str(self.path))
        self._cached = (version, ring)
        return ring

    def _file_version(self) -> tuple[int, ...]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise KeyFileMissingError(f"vault key file {self.path} does not exist") from None
        if stat.st_mode & 0o077:
            raise KeyStoreError(
                f"vault key file {self.path} is readable by other users; chmod 600 it"
            )
        # Every save replaces the file with a new one (`_write`), so its inode changes even
        # when two saves, here or in another vault process, fall within one tick of the
        # file system's clock, where the modification time alone would not change.
        return (stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)

    def save(self, ring: KeyRing) -> None:
        self._write(ring)

    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None:
        """Replace the file's CVC keys (under `locked`). Once this returns, the file holds them
        whatever happens to the machine: a CVC sealed under a key this adds is committed only
        after, and a key this drops must not come back."""
        self._write(replace(self.load(), cvc_keys=dict(cvc_keys)))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._lock(fcntl.LOCK_EX):
            self._holding_lock = True
            try:
                yield
            finally:
                self._holding_lock = False

    @contextlib.contextmanager
    def _lock(self, kind: int) -> Iterator[None]:
        lock_path = self.path.with_suffix(".lock")
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, kind)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def remove_stale_temporaries(self) -> None:
        """Remove the temporary files a writer of the key file, or of the copy kept beside it,
        left when it was killed mid-write. Each holds key material, maybe a CVC key deleted
        since, whose deletion must leave no copy of it: left there, they would outlive it."""
        with self._exclusively():
            self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        # Under the lock: every writer holds it while its temporary file exists, so none of
        # these is being written.
        for path in (self.path, previous_key_file(self.path)):
            for stale in stale_temporaries(path):
                try:
                    stale.unlink(missing_ok=True)
                except OSError as error:
                    raise KeyStoreError(
                        f"could not remove {stale}, a temporary copy of the vault's key material "
                        f"left by an interrupted write: {error.strerror}"
                    ) from None

    def _exclusively(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self._holding_lock else self.locked()

    def _write(self, ring: KeyRing) -> None:
        with self._exclusively():
            self._remove_stale_temporaries()
            self._keep_previous(ring)
            self._write_durably(self.path, ring_to_json(ring))
            self._cached = None

    def _keep_previous(self, ring: KeyRing) -> None:
        """Keep the key file as it is beside it, unless `ring` removes a key version from it:
        then no earlier file is kept, as each holds the version's material. The copy holds no
        CVC keys: each must be gone from every file once deleted (the only way to destroy the
        CVCs sealed under it), and a copy to go back to needs only the KEKs."""
        previous = previous_key_file(self.path)
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return
        try:
            before = ring_from_json(text, str(self.path))
        except KeyStoreError as error:
            # Damaged since it was read (changed by hand, without the lock): left as it is,
            # for whoever mends it, and not copied, as a copy could hold its CVC keys.
            raise KeyStoreError(f"{error}; it was left as it is") from None
        if set(before.versions) - set(ring.versions):
            previous.unlink(missing_ok=True)
        else:
            self._write_durably(previous, ring_to_json(replace(before, cvc_keys={})))

    @staticmethod
    def _write_durably(path: Path, text: str) -> None:
        """Replace `path` with `text`, 0600, once the file and its directory are synced."""
        written = AtomicFile.create(path, mode=0o600)
        try:
            written.handle.write(text)
            written.commit()
        except BaseException:
            written.discard()
            raise


@dataclass
class StaticKeyStore:
    """Keys handed to the process (environment); rotation must happen where they come from."""

    ring: KeyRing
    writable: bool = False

    def load(self) -> KeyRing:
        return self.ring

    def save(self, ring: KeyRing) -> None:
        raise KeyStoreError(
            f"the vault's keys come from {KEYS_ENV}; add a key version there and restart"
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None:
        """Kept in this process's memory: the environment cannot be written to. Another vault
        process, or this one after a restart, cannot open the CVCs sealed under them (it
        forwards those cards without their CVC)."""
        self.ring = replace(self.ring, cvc_keys=dict(cvc_keys))


@dataclass
class MemoryKeyStore:
    """A writable in-memory key set, for tests and benchmarks."""

    ring: KeyRing
    writable: bool = True

    def load(self) -> KeyRing:
        return self.ring

    def save(self, ring: KeyRing) -> None:
        self.ring = ring

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None:
        self.ring = replace(self.ring, cvc_keys=dict(cvc_keys))


def default_key_file(data_dir: Path) -> Path:
    return data_dir / "vault" / "keys.json"


def previous_key_file(path: Path) -> Path:
    """Where the key file at `path` is kept as it was before its last change."""
    return path.with_name(f"{path.name}.prev")


def key_store_from_env(
    environ: dict[str, str] | os._Environ[str], data_dir: Path, *, create: bool = True
) -> KeyStore:
    """`REMIT_VAULT_KEYS` (a key set as JSON) wins; otherwise the key file, created if absent
    and `create` allows it (`KeyFileMissingError` if not)."""
    inline = environ.get(KEYS_ENV)
    if inline:
        return StaticKeyStore(ring_from_json(inline, KEYS_ENV))
    path = Path(environ.get(KEY_FILE_ENV) or default_key_file(data_dir))
    store = FileKeyStore(path)
    if create:
        store.ensure_exists()
    store.load()
    store.remove_stale_temporaries()
    return store


def ensure_cvc_keys(
    store: KeyStore, hours: Sequence[int], now: datetime
) -> tuple[KeyRing, list[int]]:
    """The key set with a CVC key for each of `hours`, and the hours whose keys this made.
    Vault processes sharing the key file may ask at once: under its lock, the first makes a
    key and the others find it. Without a lock taken when every key is there already (the
    store's cached key set)."""
    ring = store.load()
    if all(hour in ring.cvc_keys for hour in hours):
        return ring, []
    with store.locked():
        ring = store.load()
        created = [hour for hour in hours if hour not in ring.cvc_keys]
        if created:
            ring = ring.with_cvc_keys(created, now)
            store.save_cvc_keys(ring.cvc_keys)
    return ring, created


def destroy_cvc_keys(store: KeyStore, retention: timedelta, expired_by: datetime) -> list[int]:
    """Delete the CVC keys whose last CVC (kept for `retention`) expired by `expired_by`; the
    hours of those this deleted (another vault process may have deleted some first)."""

    def expired(ring: KeyRing) -> list[int]:
        return sorted(
            hour
            for hour, key in ring.cvc_keys.items()
            if key.last_cvc_expiry(retention) <= expired_by
        )

    if not expired(store.load()):
        return []
    with store.locked():
        ring = store.load()
        destroyed = expired(ring)
        if destroyed:
            store.save_cvc_keys(ring.without_cvc_keys(destroyed).cvc_keys)
    return destroyed
