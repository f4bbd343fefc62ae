"""Key material: a 0600 file created on first start, or a read-only environment variable."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remit.vault.crypto import CvcKey, cvc_key_hour, encode_key
from remit.vault.keystore import (
    KEY_FILE_ENV,
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


def _rotated(store: FileKeyStore) -> None:
    with store.locked():
        store.save(store.load().with_new_version(store.load().current.created_at))


def test_a_change_syncs_the_directory_after_renaming_the_new_file_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without it, a power loss can undo the rename after cards were wrapped under the new
    version: the key file comes back without it, and those cards are unreadable for ever."""
    store = FileKeyStore(tmp_path / "keys.json")
    store.ensure_exists()
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        status = os.fstat(fd)
        is_directory = stat.S_ISDIR(status.st_mode) and status.st_ino == tmp_path.stat().st_ino
        synced.append("directory" if is_directory else "file")
        real_fsync(fd)

    def replace(source: str | Path, target: str | Path) -> None:
        synced.append(f"rename to {Path(target).name}")
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _rotated(store)
    renamed = synced.index("rename to keys.json")
    assert synced[renamed - 1 : renamed + 2] == ["file", "rename to keys.json", "directory"]


def test_the_file_before_a_change_is_kept_beside_it_readable_only_by_its_owner(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    store.ensure_exists()
    assert not (tmp_path / "keys.json.prev").exists()
    first = path.read_text()
    _rotated(store)
    previous = tmp_path / "keys.json.prev"
    assert previous.read_text() == first
    assert stat.S_IMODE(previous.stat().st_mode) == 0o600
    second = path.read_text()
    _rotated(store)
    assert previous.read_text() == second
    assert store.load().current_version == 3
    assert sorted(name for name in os.listdir(tmp_path) if not name.endswith(".lock")) == [
        "keys.json",
        "keys.json.prev",
    ]


def test_no_earlier_file_is_kept_once_a_key_version_is_removed(tmp_path: Path) -> None:
    """Removing a version puts the data keys wrapped under it beyond use: no copy of the file
    that still holds it stays beside the key file."""
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    store.ensure_exists()
    _rotated(store)
    removed = encode_key(store.load().versions[1].material)
    with store.locked():
        store.save(store.load().with_minimum(2))
        store.save(store.load().without_version(1))
    assert removed not in path.read_text()
    assert not (tmp_path / "keys.json.prev").exists()
    _rotated(store)
    assert removed not in (tmp_path / "keys.json.prev").read_text()


def test_another_store_reads_a_new_key_version_only_once_it_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another vault process sharing the key file must not wrap a data key under a version
    whose file a power loss could still take back: between the rename and the sync of the
    directory, it waits."""
    path = tmp_path / "keys.json"
    writer, reader = FileKeyStore(path), FileKeyStore(path)
    writer.ensure_exists()
    assert reader.load().current_version == 1
    first_file = path.stat().st_ino
    read: list[int] = []
    readers: list[threading.Thread] = []
    waited: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode) and path.stat().st_ino != first_file:
            # The new file is in place, its rename not yet durable.
            thread = threading.Thread(target=lambda: read.append(reader.load().current_version))
            thread.start()
            thread.join(timeout=0.2)
            readers.append(thread)
            waited.append(thread.is_alive())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    _rotated(writer)
    for thread in readers:
        thread.join(timeout=30)
    assert waited == [True]
    assert read == [2]


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
    # The new file itself was synced before the rename (under a scratch name of its own).
    assert any(path.startswith(f"{tmp_path}/") for path in synced[:-1])


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


def test_no_copy_of_the_key_file_keeps_a_destroyed_cvc_key(tmp_path: Path) -> None:
    """Deleting a CVC key is what destroys every copy of the CVCs sealed under it, so the file
    kept as it was before the last change (`keys.json.prev`) holds no CVC key at all."""
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    store.ensure_exists()
    ensure_cvc_keys(store, [HOUR], NOW)
    ensure_cvc_keys(store, [HOUR + 1], NOW)
    material = [encode_key(key.material) for key in store.load().cvc_keys.values()]
    previous = tmp_path / "keys.json.prev"
    assert previous.exists()
    assert json.loads(previous.read_text())["cvc_keys"] == []
    # The copy still holds what an operator would go back to: the KEKs.
    assert json.loads(previous.read_text())["versions"] == json.loads(path.read_text())["versions"]

    retention = timedelta(hours=1)
    destroy_cvc_keys(store, retention, store.load().cvc_keys[HOUR].last_cvc_expiry(retention))
    files = [candidate.read_text() for candidate in tmp_path.iterdir() if candidate.is_file()]
    assert not any(material[0] in text for text in files)
    assert material[1] in path.read_text()


_KILLED_MID_WRITE = """
import os, signal, sys
from datetime import UTC, datetime
from pathlib import Path

from remit.vault.keystore import FileKeyStore, ensure_cvc_keys


path = Path(sys.argv[1])
replace = os.replace


def killed(source, target):
    if Path(target) == path:
        os.kill(os.getpid(), signal.SIGKILL)
    replace(source, target)


store = FileKeyStore(path)
store.load()
os.replace = killed
ensure_cvc_keys(store, [int(sys.argv[2])], datetime.now(UTC))
"""


def _killed_while_adding_a_cvc_key(path: Path, hour: int) -> str:
    """A vault process killed (SIGKILL) as it renames its new key file into place, a CVC key
    added; the key material of the temporary file it left."""
    process = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_WRITE, str(path), str(hour)], check=False, timeout=60
    )
    assert process.returncode == -signal.SIGKILL
    [left] = path.parent.glob(f".{path.name}.????????.tmp")
    assert stat.S_IMODE(left.stat().st_mode) == 0o600
    return str(json.loads(left.read_text())["cvc_keys"][0]["key"])


def _files_holding(directory: Path, material: str) -> list[str]:
    return sorted(
        candidate.name
        for candidate in directory.iterdir()
        if candidate.is_file() and material in candidate.read_text()
    )


def test_a_temporary_key_file_a_killed_vault_left_is_removed_when_the_vault_starts(
    tmp_path: Path,
) -> None:
    """It holds the key set, CVC keys included: left there, it would keep a CVC key the vault
    deletes, and the CVCs sealed under it could be opened for ever."""
    path = tmp_path / "vault" / "keys.json"
    key_store_from_env({KEY_FILE_ENV: str(path)}, tmp_path)
    material = _killed_while_adding_a_cvc_key(path, HOUR)
    assert _files_holding(path.parent, material) != []
    assert FileKeyStore(path).load().cvc_keys == {}

    # Started on a database in use: the key file is opened, not made.
    key_store_from_env({KEY_FILE_ENV: str(path)}, tmp_path, create=False)

    assert _files_holding(path.parent, material) == []
    assert sorted(os.listdir(path.parent)) == ["keys.json", "keys.json.prev", "keys.lock"]


def test_a_temporary_key_file_a_killed_vault_left_is_removed_by_the_next_write(
    tmp_path: Path,
) -> None:
    """Another vault process sharing the key file, running all along."""
    path = tmp_path / "keys.json"
    running = FileKeyStore(path)
    running.ensure_exists()
    material = _killed_while_adding_a_cvc_key(path, HOUR)

    ensure_cvc_keys(running, [HOUR + 1], NOW)

    assert _files_holding(tmp_path, material) == []
    assert sorted(name for name in os.listdir(tmp_path) if not name.endswith(".lock")) == [
        "keys.json",
        "keys.json.prev",
    ]


def test_only_the_key_file_s_own_temporary_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    store.ensure_exists()
    stale = [".keys.json.0123abcd.tmp", ".keys.json.prev.89abcdef.tmp"]
    others = [
        ".other.json.0123abcd.tmp",
        "keys.json.0123abcd.tmp",
        ".keys.json.0123abcd.tmp.bak",
        ".keys.json.backup.tmp",
        "keys.json.bak",
    ]
    for name in stale + others:
        (tmp_path / name).write_text("{}")
    (tmp_path / ".keys.json.fedcba98.tmp").mkdir()

    _rotated(store)

    assert sorted(os.listdir(tmp_path)) == sorted(
        [*others, ".keys.json.fedcba98.tmp", "keys.json", "keys.json.prev", "keys.lock"]
    )


def test_a_key_file_damaged_since_it_was_read_is_not_overwritten_nor_copied(
    tmp_path: Path,
) -> None:
    """Its copy (`keys.json.prev`) would hold its CVC keys, which must be gone from every file
    once deleted."""
    path = tmp_path / "keys.json"
    store = FileKeyStore(path)
    store.ensure_exists()
    ring, _ = ensure_cvc_keys(store, [HOUR], NOW)
    material = encode_key(ring.cvc_keys[HOUR].material)
    raw = json.loads(path.read_text())
    raw["current_version"] = 7
    damaged = json.dumps(raw)
    path.write_text(damaged)

    with pytest.raises(KeyStoreError, match="left as it is"):
        store.save(ring.with_new_version(NOW))

    assert path.read_text() == damaged
    assert _files_holding(tmp_path, material) == ["keys.json"]
