"""Key material: a 0600 file created on first start, or a read-only environment variable."""

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remit.vault.crypto import CvcKey, cvc_key_hour, encode_key
from remit.vault.keystore import (
    KEYS_ENV,
    FileKeyStore,
    KeyStore,
    KeyStoreError,
    StaticKeyStore,
    destroy_cvc_keys,
    ensure_cvc_keys,
    key_store_from_env,
    ring_to_json,
)

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
HOUR = cvc_key_hour(NOW)


def test_the_key_file_is_created_on_first_start_readable_only_by_its_owner(
    tmp_path: Path,
) -> None:
    store = key_store_from_env({}, tmp_path)
    path = tmp_path / "vault" / "keys.json"
    assert path.exists()
    assert path.stat().st_mode & 0o777 == 0o600
    ring = store.load()
    assert (ring.current_version, ring.minimum_decryption_version) == (1, 1)
    assert key_store_from_env({}, tmp_path).load() == ring


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    store.ensure_exists()
    os.chmod(tmp_path / "keys.json", 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        FileKeyStore(tmp_path / "keys.json").load()


def test_a_rotation_written_by_one_store_is_seen_by_another_on_the_same_file(
    tmp_path: Path,
) -> None:
    first, second = FileKeyStore(tmp_path / "k.json"), FileKeyStore(tmp_path / "k.json")
    first.ensure_exists()
    assert second.load().current_version == 1
    first.save(first.load().with_new_version(first.load().current.created_at))
    assert second.load().current_version == 2


def test_a_rotation_within_one_tick_of_the_file_clock_is_still_seen(tmp_path: Path) -> None:
    """Two saves can fall within one tick of a coarse file-system clock: the other store must
    not keep serving the ring it read first (new cards would name a key it does not have)."""
    path = tmp_path / "k.json"
    first, second = FileKeyStore(path), FileKeyStore(path)
    first.ensure_exists()
    assert second.load().current_version == 1
    before = path.stat()
    first.save(first.load().with_new_version(first.load().current.created_at))
    # The same modification time as the file second read, as a coarse clock would give.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert second.load().current_version == 2


def test_keys_from_the_environment_are_used_and_cannot_be_rotated_in_place(
    tmp_path: Path,
) -> None:
    source = FileKeyStore(tmp_path / "k.json")
    source.ensure_exists()
    store = key_store_from_env({KEYS_ENV: ring_to_json(source.load())}, tmp_path / "other")
    assert isinstance(store, StaticKeyStore)
    assert store.load() == source.load()
    assert not (tmp_path / "other").exists()
    with pytest.raises(KeyStoreError, match=KEYS_ENV):
        store.save(store.load())


def test_malformed_key_material_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError) as caught:
        key_store_from_env({KEYS_ENV: '{"versions": "c2VjcmV0LWtleS1ieXRlcw=="}'}, tmp_path)
    assert "c2VjcmV0" not in str(caught.value)


def _cvc_key(store: KeyStore, hour: int) -> CvcKey:
    return ensure_cvc_keys(store, [hour], NOW)[0].cvc_keys[hour]


def test_a_cvc_key_made_through_one_store_is_the_one_another_store_on_the_file_finds(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.json"
    first, second = FileKeyStore(path), FileKeyStore(path)
    first.ensure_exists()
    assert second.load().cvc_keys == {}

    ring, created = ensure_cvc_keys(first, [HOUR], NOW)

    made = ring.cvc_keys[HOUR]
    assert created == [HOUR]
    assert second.load().cvc_keys == {HOUR: made}
    # The other store, asked for the same hour, uses that key rather than making its own.
    assert ensure_cvc_keys(second, [HOUR], NOW) == (second.load(), [])
    assert first.load().cvc_keys == {HOUR: made}
    assert path.stat().st_mode & 0o777 == 0o600
    # The KEKs are untouched, and a fresh reader of the file finds the same key set.
    assert FileKeyStore(path).load() == first.load()
    assert first.load().versions == second.load().versions


def test_saving_cvc_keys_keeps_the_rest_of_the_key_set_and_drops_the_keys_left_out(
    tmp_path: Path,
) -> None:
    store = FileKeyStore(tmp_path / "k.json")
    store.ensure_exists()
    with store.locked():
        store.save(store.load().with_new_version(NOW))
        store.save_cvc_keys(store.load().with_cvc_keys([HOUR, HOUR + 1], NOW).cvc_keys)
    kept = store.load().cvc_keys[HOUR + 1]
    gone = store.load().cvc_keys[HOUR]
    with store.locked():
        store.save_cvc_keys(store.load().without_cvc_keys([HOUR]).cvc_keys)
    ring = FileKeyStore(tmp_path / "k.json").load()
    assert (ring.current_version, ring.cvc_keys) == (2, {HOUR + 1: kept})
    assert encode_key(gone.material) not in (tmp_path / "k.json").read_text()


def test_cvc_keys_are_synced_to_disk_with_the_rename_that_puts_them_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CVC is committed under a key once the key is saved: a crash just after must not
    bring back the file without it (the rename is durable once the directory is synced)."""
    store = FileKeyStore(tmp_path / "k.json")
    store.ensure_exists()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with store.locked():
        store.save_cvc_keys(store.load().with_cvc_keys([HOUR], NOW).cvc_keys)
    assert synced[-1] == str(tmp_path)
    assert str(tmp_path / "k.tmp") in synced


def test_a_key_file_from_before_cvc_keys_loads_without_any(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    FileKeyStore(path).ensure_exists()
    raw = json.loads(path.read_text())
    del raw["cvc_keys"]
    path.write_text(json.dumps(raw))
    ring = FileKeyStore(path).load()
    assert (ring.current_version, ring.cvc_keys) == (1, {})


def test_keys_from_the_environment_keep_their_cvc_keys_in_memory(tmp_path: Path) -> None:
    source = FileKeyStore(tmp_path / "k.json")
    source.ensure_exists()
    store = key_store_from_env({KEYS_ENV: ring_to_json(source.load())}, tmp_path / "other")
    made = _cvc_key(store, HOUR)
    assert store.load().cvc_keys == {HOUR: made}
    assert store.load().versions == source.load().versions
    assert source.load().cvc_keys == {}
    assert not (tmp_path / "other").exists()


def test_vault_processes_asking_for_one_hours_cvc_key_at_once_all_get_the_same_key(
    tmp_path: Path,
) -> None:
    """Each with its own store on the file, as separate processes would be, in threads that
    start together: the key file's lock lets one make the key, and the others read it."""
    path = tmp_path / "k.json"
    FileKeyStore(path).ensure_exists()
    stores = [FileKeyStore(path) for _ in range(4)]
    for store in stores:
        store.load()
    start = threading.Barrier(len(stores))

    def ask(store: FileKeyStore) -> tuple[CvcKey, list[int]]:
        start.wait()
        ring, created = ensure_cvc_keys(store, [HOUR], NOW)
        return ring.cvc_keys[HOUR], created

    with ThreadPoolExecutor(len(stores)) as pool:
        answers = list(pool.map(ask, stores))

    assert len({key for key, _ in answers}) == 1
    assert sorted(created for _, created in answers) == [[], [], [], [HOUR]]
    assert FileKeyStore(path).load().cvc_keys == {HOUR: answers[0][0]}


def test_a_cvc_key_is_destroyed_once_the_last_cvc_it_can_have_sealed_has_expired(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.json"
    first, second = FileKeyStore(path), FileKeyStore(path)
    first.ensure_exists()
    ensure_cvc_keys(first, [HOUR, HOUR + 1], NOW)
    second.load()
    retention = timedelta(hours=1)
    last_expiry = first.load().cvc_keys[HOUR].last_cvc_expiry(retention)
    assert destroy_cvc_keys(first, retention, last_expiry - timedelta(seconds=1)) == []

    assert destroy_cvc_keys(first, retention, last_expiry) == [HOUR]

    # Another vault process finds nothing left to destroy, and does not bring it back.
    assert destroy_cvc_keys(second, retention, last_expiry) == []
    assert sorted(FileKeyStore(path).load().cvc_keys) == [HOUR + 1]
