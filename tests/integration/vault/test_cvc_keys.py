"""CVCs are sealed under hourly CVC keys that the vault deletes once every CVC sealed under
them has expired, so that a copy of a destroyed CVC's ciphertext (the WAL, a backup, a page's
free space) cannot be decrypted for ever with the key file of the day."""

import asyncio
import logging
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.vault import keystore
from remit.vault.background import REQUESTER, start_background
from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import KeyRing, cvc_key_hour, encode_key, open_card
from remit.vault.domain import StoredCard
from remit.vault.keystore import FileKeyStore, KeyStore, StaticKeyStore
from remit.vault.repository import SqlVaultRepository
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.fake_acquirer import running_acquirer
from tests.support.vault import (
    RunningVault,
    cvc_sealed_before_cvc_keys,
    running_vault,
    sealed_token_bound,
    store_token_bound,
)

pytestmark = pytest.mark.anyio

START_HOUR = cvc_key_hour(START)
# The hour's key outlives the last CVC it can seal (stored at the hour's end, kept an hour) by
# the vault's grace.
KEY_DESTROYED_AFTER = timedelta(hours=2, minutes=5)
# Only a guard against a hang: the background task's first rounds run at once.
BACKGROUND_GUARD_S = 30.0


async def _tokenize(vault: RunningVault, cvc: str | None, number: str = "4242424242424242") -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=12, exp_year=2030, requester="test"
    )
    if cvc is not None:
        request.cvc = cvc
    return (await vault.stub.TokenizeCard(request)).vault_token


async def _forward(vault: RunningVault, token: str, reference: str) -> None:
    reply = await vault.stub.ForwardAuthorization(
        vault_pb2.ForwardAuthorizationRequest(
            account_id="acct_1", vault_token=token, destination="acquirer", amount=100,
            currency="usd", reference=reference, purpose="test", requester="core",
        )
    )  # fmt: skip
    assert reply.result.approved


async def _stored(engine: AsyncEngine, token: str) -> StoredCard:
    async with engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    return card


async def _cvc_key_events(vault: RunningVault) -> list[tuple[str, str, str]]:
    """(action, requester, purpose) of every CVC key event, in the order of the purposes."""
    events = []
    for action in (vault_pb2.AUDIT_ACTION_CREATE_CVC_KEY, vault_pb2.AUDIT_ACTION_DESTROY_CVC_KEY):
        listed = await vault.stub.ListAuditEvents(
            vault_pb2.ListAuditEventsRequest(action=action, limit=100)
        )
        events += [
            (vault_pb2.AuditAction.Name(e.action), e.requester, e.purpose) for e in listed.data
        ]
    return sorted(events, key=lambda event: (event[2], event[0]))


def _hour(moment: datetime) -> str:
    return moment.isoformat()


async def test_a_destroyed_cvcs_kept_ciphertext_is_beyond_use_once_its_cvc_key_is_deleted(
    harness: VaultHarness,
) -> None:
    """The review's reproduction: the ciphertext of CVC 123 kept, the CVC destroyed by its
    authorization, the KEK rotated, the data key re-wrapped, the old version retired and
    removed. The card's data key is the same throughout, so what stops the kept copy is the
    deletion of the CVC key."""
    stub = harness.vault.stub
    token = await _tokenize(harness.vault, "123")
    kept = (await _stored(harness.engine, token)).sealed.cvc_ciphertext
    cvc_key_material = encode_key(harness.keys.load().cvc_keys[START_HOUR].material)
    await _forward(harness.vault, token, "op_1")
    assert harness.acquirer.requests[-1].cvc == "123"
    await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    await stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="operator"))
    await stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
    )
    await stub.RemoveKeyVersion(vault_pb2.RemoveKeyVersionRequest(version=1, requester="op"))
    current = await _stored(harness.engine, token)
    assert (current.sealed.kek_version, current.sealed.cvc_ciphertext) == (2, None)
    with_kept_cvc = replace(current.sealed, cvc_ciphertext=kept)
    # Until the CVC key goes, the kept copy opens with the key file of the day.
    metadata = card_metadata(current)
    opened = open_card(harness.keys.load(), token, "acct_1", with_kept_cvc, metadata=metadata)
    assert opened.cvc == Secret("123")
    harness.clock.advance((KEY_DESTROYED_AFTER - timedelta(seconds=1)).total_seconds())
    early = await harness.vault.service.maintain_cvc_keys(requester=REQUESTER)
    assert early.destroyed == []

    harness.clock.advance(1)
    changes = await harness.vault.service.maintain_cvc_keys(requester=REQUESTER)

    assert changes.destroyed == [START_HOUR]
    opened = open_card(harness.keys.load(), token, "acct_1", with_kept_cvc, metadata=metadata)
    assert opened.cvc is None
    assert opened.number.reveal()[-4:] == "4242"
    assert cvc_key_material not in harness.keys.path.read_text()
    assert START_HOUR not in FileKeyStore(harness.keys.path).load().cvc_keys
    destroyed = [event for event in await _cvc_key_events(harness.vault) if "DESTROY" in event[0]]
    assert destroyed == [
        ("AUDIT_ACTION_DESTROY_CVC_KEY", REQUESTER, f"destroy the CVC key of {_hour(START)}")
    ]


async def test_a_cvc_forwarded_within_its_hour_is_sent_across_the_turn_of_the_hour(
    harness: VaultHarness,
) -> None:
    harness.clock.advance(30 * 60)
    token = await _tokenize(harness.vault, "314")
    harness.clock.advance(35 * 60)
    # The background's round in the next hour: makes the hour after's key, deletes nothing.
    changes = await harness.vault.service.maintain_cvc_keys(requester=REQUESTER)
    assert (changes.created, changes.destroyed) == ([START_HOUR + 1, START_HOUR + 2], [])
    harness.clock.advance(24 * 60)

    await _forward(harness.vault, token, "op_1")

    assert harness.acquirer.requests[-1].cvc == "314"
    assert await _cvc_key_events(harness.vault) == [
        ("AUDIT_ACTION_CREATE_CVC_KEY", "test", f"create the CVC key of {_hour(START)}"),
        ("AUDIT_ACTION_CREATE_CVC_KEY", REQUESTER,
         f"create the CVC key of {_hour(START + timedelta(hours=1))}"),
        ("AUDIT_ACTION_CREATE_CVC_KEY", REQUESTER,
         f"create the CVC key of {_hour(START + timedelta(hours=2))}"),
    ]  # fmt: skip


async def test_a_cvc_sealed_under_its_cards_data_key_before_the_upgrade_is_still_sent(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness.vault, None)
    # Stored before CVC keys, so before the account was bound into its seals as well.
    sealed = sealed_token_bound(harness.keys.load(), token, "4242424242424242")
    legacy = cvc_sealed_before_cvc_keys(harness.keys.load(), token, sealed, "737")
    async with harness.engine.begin() as db:
        await store_token_bound(db, token, sealed)
        await db.execute(
            text("UPDATE cards SET cvc_ciphertext = :c, cvc_expires_at = :e WHERE token = :t"),
            {"c": legacy, "e": START + timedelta(hours=1), "t": token},
        )

    await _forward(harness.vault, token, "op_1")
    await _forward(harness.vault, token, "op_2")

    assert [request.cvc for request in harness.acquirer.requests] == ["737", ""]
    assert (await _stored(harness.engine, token)).sealed.cvc_ciphertext is None


async def test_two_vault_processes_on_one_key_file_seal_and_open_under_the_same_cvc_key(
    vault_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys.json"
    FileKeyStore(path).ensure_exists()
    clock = FixedClock(START)
    async with (
        running_acquirer() as (acquirer, target),
        running_vault(vault_engine, FileKeyStore(path), {"acquirer": target}, clock) as first,
        running_vault(vault_engine, FileKeyStore(path), {"acquirer": target}, clock) as second,
    ):
        # The second has read the key file before the first makes the hour's key.
        await second.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
        stored_by_first = await _tokenize(first, "111")
        await _forward(second, stored_by_first, "op_1")
        await first.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
        written = path.stat()
        reads = _count_key_file_reads(monkeypatch)

        stored_by_second = await _tokenize(second, "222", "5555555555554444")
        await _forward(first, stored_by_second, "op_2")

        assert [(r.card_number[-4:], r.cvc) for r in acquirer.requests] == [
            ("4242", "111"),
            ("4444", "222"),
        ]
        # One key for the hour, made once; each process has read it and reads it no more.
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (
            written.st_ino,
            written.st_mtime_ns,
        )
        assert reads == []
        assert sorted(FileKeyStore(path).load().cvc_keys) == [START_HOUR]
        assert [event[1] for event in await _cvc_key_events(first)] == ["test"]


def _count_key_file_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The key files read (and parsed) from now on."""
    reads: list[Path] = []
    real_load = FileKeyStore.load
    parse = keystore.ring_from_json

    def load(store: FileKeyStore) -> KeyRing:
        def parsed(text: str, source: str) -> KeyRing:
            reads.append(store.path)
            return parse(text, source)

        monkeypatch.setattr(keystore, "ring_from_json", parsed)
        try:
            return real_load(store)
        finally:
            monkeypatch.setattr(keystore, "ring_from_json", parse)

    monkeypatch.setattr(FileKeyStore, "load", load)
    return reads


async def test_tokenizing_and_forwarding_neither_write_nor_read_the_key_file_within_the_hour(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.vault.service.maintain_cvc_keys(requester=REQUESTER)
    harness.keys.load()
    written = harness.keys.path.stat()
    reads = _count_key_file_reads(monkeypatch)

    for number in range(3):
        token = await _tokenize(harness.vault, "314")
        await _forward(harness.vault, token, f"op_{number}")
        harness.clock.advance(15 * 60)

    assert [request.cvc for request in harness.acquirer.requests] == ["314"] * 3
    assert reads == []
    after = harness.keys.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


async def test_the_vaults_background_makes_the_next_hours_key_and_deletes_expired_ones(
    harness: VaultHarness,
) -> None:
    await _tokenize(harness.vault, "314")
    harness.clock.advance(KEY_DESTROYED_AFTER.total_seconds())
    later = cvc_key_hour(harness.clock.now())
    stop = asyncio.Event()
    tasks = start_background(harness.vault.service, stop, cvc_sweep_interval_s=0.05)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BACKGROUND_GUARD_S
    try:
        while sorted(harness.keys.load().cvc_keys) != [later, later + 1]:
            if loop.time() > deadline:
                raise AssertionError(f"the CVC keys were not kept up within {BACKGROUND_GUARD_S}s")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    actions = [event[0] for event in await _cvc_key_events(harness.vault)]
    assert sorted(actions) == ["AUDIT_ACTION_CREATE_CVC_KEY"] * 3 + ["AUDIT_ACTION_DESTROY_CVC_KEY"]


async def test_a_vault_whose_keys_come_from_the_environment_keeps_its_cvc_keys_in_memory(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    source = FileKeyStore(tmp_path / "keys.json")
    source.ensure_exists()
    keys: KeyStore = StaticKeyStore(source.load())
    async with (
        running_acquirer() as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target}, FixedClock(START)) as vault,
    ):
        token = await _tokenize(vault, "314")
        await _forward(vault, token, "op_1")
    assert acquirer.requests[-1].cvc == "314"
    assert sorted(keys.load().cvc_keys) == [START_HOUR]
    assert source.load().cvc_keys == {}


async def test_a_cvc_whose_key_is_gone_is_destroyed_and_the_card_sent_without_it(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """As a vault process whose clock runs far ahead of the others' would leave it: the CVC's
    key deleted before the CVC expired."""
    token = await _tokenize(harness.vault, "314")
    with harness.keys.locked():
        harness.keys.save_cvc_keys(harness.keys.load().without_cvc_keys([START_HOUR]).cvc_keys)

    with caplog.at_level(logging.WARNING):
        await _forward(harness.vault, token, "op_1")

    assert not harness.acquirer.requests[-1].HasField("cvc")
    assert (await _stored(harness.engine, token)).sealed.cvc_ciphertext is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"the CVC of {token} had not expired but its CVC key is gone; the authorization is "
        "sent without it"
    ]
