"""Key material: a 0600 file created on first start, or a read-only environment variable."""

import os
from pathlib import Path

import pytest

from remit.vault.keystore import (
    KEYS_ENV,
    FileKeyStore,
    KeyStoreError,
    StaticKeyStore,
    key_store_from_env,
    ring_to_json,
)


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
