"""A vault starts only with the key set its database's cards are sealed under: it makes one on
a fresh database and records its check value; it refuses a missing key file, another key set,
or an older copy of its own, rather than serve with keys that cannot open the cards."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import ConfigError
from remit.core.secrets import Secret
from remit.storage.embedded import EmbeddedCluster
from remit.storage.migrate import upgrade
from remit.storage.reachability import location_of
from remit.vault.crypto import encode_key
from remit.vault.key_check import key_check_value, open_key_store
from remit.vault.keystore import KEY_FILE_ENV, FileKeyStore
from remit.vault.service import VaultService
from tests.support.commands import PASSWORD, remit
from tests.support.postgres import WorkerDatabases, scratch_database
from tests.support.vault import without_the_seal_format_check

pytestmark = pytest.mark.anyio


async def _recorded(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as db:
        rows = await db.execute(text("SELECT key_set, check_value FROM key_check_values"))
        return [(row[0], row[1]) for row in rows]


async def _store_a_card(engine: AsyncEngine, keys: FileKeyStore) -> str:
    service = VaultService(engine, keys, {})
    stored = await service.tokenize(
        "acct_1", Secret("4242424242424242"), 12, 2031, None, requester="test"
    )
    return stored.token


def _key_file(path: Path) -> dict[str, str]:
    return {KEY_FILE_ENV: str(path)}


async def test_a_fresh_database_gets_new_keys_and_records_their_check_value(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    store = await open_key_store({}, tmp_path, vault_engine)

    ring = store.load()
    assert (tmp_path / "vault" / "keys.json").exists()
    [(key_set, value)] = await _recorded(vault_engine)
    assert (key_set, value) == ("card-kek", key_check_value(ring))
    for key in [ring.fingerprint_key, *(version.material for version in ring.versions.values())]:
        assert key.hex() not in value
        assert encode_key(key) not in value
    # Started again: the same keys, nothing recorded anew.
    assert (await open_key_store({}, tmp_path, vault_engine)).load() == ring
    assert await _recorded(vault_engine) == [(key_set, value)]


async def test_a_missing_key_file_is_not_replaced_once_the_database_has_a_key_set(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """A mistyped REMIT_VAULT_KEY_FILE, or a volume not mounted: a new key set would leave
    every stored card unreadable and seal new ones under keys lost once the right file is
    back."""
    await open_key_store({}, tmp_path / "first", vault_engine)
    elsewhere = tmp_path / "unmounted" / "keys.json"

    with pytest.raises(ConfigError) as refused:
        await open_key_store(_key_file(elsewhere), tmp_path, vault_engine)

    assert str(refused.value) == (
        f"vault key file {elsewhere} does not exist, but the vault database is used with a key "
        "set already, and a new one would leave its cards unreadable; set REMIT_VAULT_KEY_FILE "
        "to that key set's file (is its volume mounted?)"
    )
    assert not elsewhere.parent.exists()


async def test_a_missing_key_file_is_not_replaced_while_the_database_holds_cards(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Cards stored before check values were recorded count as a key set made before."""
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    await _store_a_card(vault_engine, keys)

    with pytest.raises(
        ConfigError, match="does not exist, but the vault database is used with a key set"
    ):
        await open_key_store(_key_file(tmp_path / "other.json"), tmp_path, vault_engine)
    assert not (tmp_path / "other.json").exists()


async def test_another_key_set_is_refused(vault_engine: AsyncEngine, tmp_path: Path) -> None:
    first = await open_key_store(_key_file(tmp_path / "first.json"), tmp_path, vault_engine)
    other = FileKeyStore(tmp_path / "other.json")
    other.ensure_exists()

    with pytest.raises(ConfigError) as refused:
        await open_key_store(_key_file(other.path), tmp_path, vault_engine)

    expected, found = key_check_value(first.load()), key_check_value(other.load())
    assert str(refused.value) == (
        f"the vault keys in the key file {other.path} (key check value {found[:8]}) are not "
        f"the key set the vault database is used with ({expected[:8]}); set "
        "REMIT_VAULT_KEY_FILE to that key set's file (is its volume mounted?)"
    )


async def test_cards_stored_before_check_values_decide_the_key_set_recorded(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """The first start after the upgrade records the value of the key set it finds, once that
    key set unwraps the newest card: the wrong one then would lock the right one out."""
    right = FileKeyStore(tmp_path / "right.json")
    right.ensure_exists()
    newest = await _store_a_card(vault_engine, right)
    wrong = FileKeyStore(tmp_path / "wrong.json")
    wrong.ensure_exists()

    with pytest.raises(ConfigError) as refused:
        await open_key_store(_key_file(wrong.path), tmp_path, vault_engine)
    assert str(refused.value) == (
        f"the vault keys in the key file {wrong.path} do not unwrap the data key of the vault "
        f"database's newest card ({newest}); set REMIT_VAULT_KEY_FILE to the key file its "
        "cards are sealed under"
    )
    assert await _recorded(vault_engine) == []

    await open_key_store(_key_file(right.path), tmp_path, vault_engine)
    assert await _recorded(vault_engine) == [("card-kek", key_check_value(right.load()))]


async def test_an_older_copy_of_the_key_file_is_refused(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """A key file restored from before a rotation lacks the version newer cards are wrapped
    under; rotating it would make that version again, with other key material."""
    path = tmp_path / "keys.json"
    keys = await open_key_store(_key_file(path), tmp_path, vault_engine)
    assert isinstance(keys, FileKeyStore)
    shutil.copy2(path, tmp_path / "before-rotation.json")
    service = VaultService(vault_engine, keys, {})
    await service.rotate_key(requester="operator")
    await _store_a_card(vault_engine, keys)

    with pytest.raises(ConfigError) as refused:
        await open_key_store(_key_file(tmp_path / "before-rotation.json"), tmp_path, vault_engine)
    assert str(refused.value) == (
        "the vault database holds cards wrapped under key version 2, which the key file "
        f"{tmp_path / 'before-rotation.json'} does not have (its newest is 1): it is an older "
        "copy of the vault's keys; restore the newest"
    )


async def test_the_vault_process_refuses_to_start_in_one_line_with_exit_code_2(
    databases: WorkerDatabases, vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    await open_key_store({}, tmp_path / "first", vault_engine)
    data_dir = tmp_path / "second"

    ran = await remit(
        "vault", tmp_path=data_dir, VAULT_DATABASE_URL=databases.vault_url, REMIT_VAULT_PORT="0"
    )

    assert ran.returncode == 2
    line = ran.failure_line()
    assert " ERROR remit.bootstrap: remit vault: vault key file " in line
    assert line.endswith("set REMIT_VAULT_KEY_FILE to that key set's file (is its volume mounted?)")
    assert not (data_dir / "vault" / "keys.json").exists()


@pytest.mark.parametrize(
    "migrated_to", [None, "0003_forward_request_digest"], ids=["unmigrated", "before_key_checks"]
)
async def test_the_vault_process_on_a_database_not_migrated_says_to_migrate_in_one_line(
    migrated_to: str | None, pg_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """It failed with the traceback of the key check's first statement (no such table)."""
    with scratch_database(pg_cluster, "vault_not_migrated") as url:
        if migrated_to is not None:
            upgrade("vault", url, migrated_to)
        # As an operator's URL has one: it must not be shown.
        with_password = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)

        ran = await remit(
            "vault", tmp_path=tmp_path, VAULT_DATABASE_URL=with_password, REMIT_VAULT_PORT="0"
        )

    assert ran.returncode == 2
    line = ran.failure_line()
    # Refused as it starts, before the key check reads a table (`remit.storage.schema_check`).
    assert (
        f" ERROR remit.bootstrap: remit vault: the vault database (VAULT_DATABASE_URL "
        f"{location_of(url)}, needed by vault) is " in line
    )
    if migrated_to is None:
        assert "needed by vault) is not migrated: " in line
    else:
        assert f"needed by vault) is at schema revision {migrated_to}, behind " in line
    assert line.endswith("run `remit migrate` with the same settings, then start it again")
    assert PASSWORD not in line
    assert not (tmp_path / "vault" / "keys.json").exists()


async def test_a_newest_card_of_a_seal_format_this_vault_does_not_know_is_named_as_such(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    """No key set unwraps a card of a format no seal is bound to: told the keys do not unwrap
    it, the operator would go looking for another key file when this one may be right."""
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    newest = await _store_a_card(vault_engine, keys)
    async with without_the_seal_format_check(vault_engine):
        async with vault_engine.begin() as db:
            await db.execute(text("UPDATE cards SET seal_format = 4"))

        with pytest.raises(ConfigError) as refused:
            await open_key_store(_key_file(keys.path), tmp_path, vault_engine)

    assert str(refused.value) == (
        f"the vault database's newest card ({newest}) names a seal format this vault does not "
        "know (written by a newer vault version, or by hand), so the vault keys in the key "
        f"file {keys.path} cannot be checked against it; start the vault version that wrote "
        "it, or mend the card's seal_format"
    )
    assert "do not unwrap" not in str(refused.value)
    assert await _recorded(vault_engine) == []
