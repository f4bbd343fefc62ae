"""Key rotation round trip: tokenize, rotate, re-wrap, retire the old version, still authorize."""

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import grpc
import pytest
from sqlalchemy import text

from remit.grpcutil.internal_auth import InternalAccess
from remit.vault.admin import AdminError, rotate_key
from remit.vault.background import start_background
from remit.vault.crypto import CvcKey, KeyRing
from remit.vault.keystore import FileKeyStore, KeyStoreError
from remit.vault.service import VaultError, VaultService
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.vault import DyingOnceTheKeyFileChanged, ProcessDiedError, damage_sealed_card

pytestmark = pytest.mark.anyio


async def _tokenize(harness: VaultHarness, number: str) -> str:
    reply = await harness.vault.stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id="acct_1", number=number, exp_month=1, exp_year=2031, requester="test"
        )
    )
    return reply.vault_token


async def _authorize(harness: VaultHarness, token: str, reference: str) -> bool:
    reply = await harness.vault.stub.ForwardAuthorization(
        vault_pb2.ForwardAuthorizationRequest(
            account_id="acct_1", vault_token=token, destination="acquirer", amount=100,
            currency="usd", reference=reference, purpose="test", requester="core",
        )
    )  # fmt: skip
    return reply.result.approved


async def _versions(harness: VaultHarness) -> dict[str, int]:
    async with harness.engine.connect() as db:
        rows = await db.execute(text("SELECT token, kek_version FROM cards"))
        return {row[0]: row[1] for row in rows}


async def test_rotate_rewrap_retire_and_still_authorize(harness: VaultHarness) -> None:
    stub = harness.vault.stub
    old_cards = [await _tokenize(harness, n) for n in ("4242424242424242", "5555555555554444")]
    ciphertexts_before = await _ciphertexts(harness)

    rotated = await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    assert rotated.key_version == 2
    assert harness.keys.load().current_version == 2
    new_card = await _tokenize(harness, "378282246310005")
    assert (await _versions(harness))[new_card] == 2

    # Retiring version 1 while data keys still depend on it would strand those cards.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SetMinimumDecryptionVersion(
            vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    progress = await stub.RewrapDataKeys(
        vault_pb2.RewrapDataKeysRequest(batch_size=1, requester="operator")
    )
    assert (progress.rewrapped, progress.remaining, progress.key_version) == (1, 1, 2)
    progress = await stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="operator"))
    assert (progress.rewrapped, progress.remaining) == (1, 0)
    assert set((await _versions(harness)).values()) == {2}
    # Only the data keys changed: the sealed numbers are byte for byte the same.
    assert {t: c for t, c in (await _ciphertexts(harness)).items() if t in old_cards} == {
        t: c for t, c in ciphertexts_before.items()
    }

    retired = await stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
    )
    assert retired.minimum_version == 2
    status = await stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert (status.current_version, status.minimum_decryption_version) == (2, 2)
    assert {v.version: v.data_key_count for v in status.versions} == {1: 0, 2: 3}

    for index, token in enumerate([*old_cards, new_card]):
        assert await _authorize(harness, token, f"op_rot_{index}")
    assert [r.card_number for r in harness.acquirer.requests] == [
        "4242424242424242",
        "5555555555554444",
        "378282246310005",
    ]


async def test_a_card_left_on_a_retired_version_cannot_be_decrypted(harness: VaultHarness) -> None:
    token = await _tokenize(harness, "4242424242424242")
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    # Force the floor up behind the service's back, as a hand-edited key file would.
    harness.keys.save(harness.keys.load().with_minimum(2))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _authorize(harness, token, "op_retired")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert harness.acquirer.requests == []


async def test_the_background_task_rewraps_after_a_rotation(harness: VaultHarness) -> None:
    token = await _tokenize(harness, "4242424242424242")
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    stop = asyncio.Event()
    tasks = start_background(harness.vault.service, stop, rewrap_interval_s=0.05)
    try:
        deadline = asyncio.get_running_loop().time() + 30  # only a rewrap that never comes
        while (await _versions(harness))[token] != 2:
            assert asyncio.get_running_loop().time() < deadline, "never rewrapped"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert (await _versions(harness))[token] == 2
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_REWRAP)
    )
    assert [e.requester for e in events.data] == ["vault-background"]


async def _ciphertexts(harness: VaultHarness) -> dict[str, bytes]:
    async with harness.engine.connect() as db:
        rows = await db.execute(text("SELECT token, number_ciphertext FROM cards"))
        return {row[0]: bytes(row[1]) for row in rows}


async def test_rotate_and_wait_stops_and_says_so_when_a_data_key_will_not_rewrap(
    harness: VaultHarness,
) -> None:
    """`remit vault rotate-key --wait` asked for batch after batch until none was left; a data
    key that cannot be unwrapped is never left behind, so it asked for ever."""
    good = await _tokenize(harness, "4242424242424242")
    damaged = await _tokenize(harness, "5555555555554444")
    async with harness.engine.begin() as db:
        await damage_sealed_card(db, damaged, "wrapped_data_key")
    with pytest.raises(AdminError) as stopped:
        await asyncio.wait_for(rotate_key(harness.vault.target, InternalAccess(), wait=True), 30)
    assert "1 older data keys were re-wrapped here, but 1 could not be" in str(stopped.value)
    versions = await _versions(harness)
    assert versions[good] == versions[damaged] + 1


async def test_rotate_and_wait_waits_for_data_keys_another_rewrap_holds(
    harness: VaultHarness,
) -> None:
    """A rotation starts the vault's own background re-wrap, whose batch holds the rows it
    works on, and the command's batches skip held rows: a batch that moved nothing because
    another held them made `rotate-key --wait` give up (exit 2) while the keys were fine."""
    token = await _tokenize(harness, "4242424242424242")
    async with harness.engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text("SELECT 1 FROM cards WHERE token = :t FOR UPDATE"), {"t": token})
        rotating = asyncio.create_task(
            rotate_key(harness.vault.target, InternalAccess(), wait=True)
        )
        await asyncio.sleep(1.0)
        assert not rotating.done(), "it gave up on a data key another transaction held"
        await transaction.rollback()
    lines = await asyncio.wait_for(rotating, 30)
    assert lines[-1].startswith("re-wrapped 1 data keys")
    assert (await _versions(harness))[token] == 2


async def _tokens_in_rewrap_order(harness: VaultHarness) -> list[str]:
    async with harness.engine.connect() as db:
        rows = await db.execute(text("SELECT token FROM cards ORDER BY kek_version, token"))
        return [row[0] for row in rows]


async def test_a_rewrap_pass_goes_on_past_full_pages_of_data_keys_that_will_not_unwrap(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Each page started again from the oldest card: once a page's worth of the first were
    undecryptable, no other card was ever re-wrapped (and each pass logged every failure)."""
    numbers = ("4242424242424242", "5555555555554444", "378282246310005", "6011111111111117",
               "3566002020360505")  # fmt: skip
    for number in numbers:
        await _tokenize(harness, number)
    *damaged, good = await _tokens_in_rewrap_order(harness)
    async with harness.engine.begin() as db:
        for token in damaged:
            await damage_sealed_card(db, token, "wrapped_data_key")
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))

    with caplog.at_level(logging.ERROR, logger="remit.vault.service"):
        rewrapped = await harness.vault.service.rewrap_all(requester="test", batch_size=2)

    assert rewrapped == 1
    assert await _versions(harness) == {**{token: 1 for token in damaged}, good: 2}
    # (The rotation's INFO line is captured too when an earlier test left the logger at INFO.)
    [line] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "remit.vault.service" and r.levelno >= logging.ERROR
    ]
    assert line.startswith("could not re-wrap 4 data keys under key version 2: ")
    assert " and 1 more; " in line
    assert sum(token in line for token in damaged) == 3
    # The version those cards still need stays allowed.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.vault.stub.SetMinimumDecryptionVersion(
            vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "4 data keys are still wrapped" in str(refused.value.details())


async def _rotation_events(harness: VaultHarness) -> list[tuple[int, bool, str]]:
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_ROTATE_KEY)
    )
    return sorted((e.key_version, e.succeeded, e.purpose) for e in events.data)


async def test_a_rotation_is_in_the_audit_log_as_started_before_the_key_file_changes(
    harness: VaultHarness,
) -> None:
    """The rotation was recorded only after the key file was saved, in a statement of its own:
    a vault dying in between had rotated the keys with no record of it."""
    dying = VaultService(
        harness.engine, DyingOnceTheKeyFileChanged(harness.keys), {}, clock=harness.clock
    )
    with pytest.raises(ProcessDiedError):
        await dying.rotate_key(requester="operator")
    assert harness.keys.load().current_version == 2
    assert await _rotation_events(harness) == [(1, False, "rotate: started")]

    rotated = await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    assert rotated.key_version == 3
    assert await _rotation_events(harness) == [
        (1, False, "rotate: started"),
        (2, False, "rotate: started"),
        (3, True, "rotate"),
    ]


async def _retirement_events(harness: VaultHarness) -> list[tuple[int, bool, str]]:
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_SET_MINIMUM_VERSION)
    )
    return sorted((e.key_version, e.succeeded, e.purpose) for e in events.data)


@dataclass
class _FailingToSave:
    """A key store whose key file cannot be written (a full disk, a read-only volume)."""

    store: FileKeyStore
    writable: bool = True

    def load(self) -> KeyRing:
        return self.store.load()

    def save(self, ring: KeyRing) -> None:
        raise KeyStoreError("the key file could not be written")

    def save_cvc_keys(self, cvc_keys: Mapping[int, CvcKey]) -> None:
        raise KeyStoreError("the key file could not be written")

    def locked(self) -> AbstractContextManager[None]:
        return self.store.locked()


async def test_a_retirement_is_in_the_audit_log_as_started_before_the_key_file_changes(
    harness: VaultHarness,
) -> None:
    """The retirement was recorded only after the key file was saved, in a statement of its
    own: a vault dying in between had retired key versions with no record of it."""
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    dying = VaultService(
        harness.engine, DyingOnceTheKeyFileChanged(harness.keys), {}, clock=harness.clock
    )
    with pytest.raises(ProcessDiedError):
        await dying.set_minimum_decryption_version(2, requester="operator")
    assert harness.keys.load().minimum_decryption_version == 2
    assert await _retirement_events(harness) == [(2, False, "minimum 2: started")]

    # Refused by its checks: nothing changes, nothing is recorded.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.vault.stub.SetMinimumDecryptionVersion(
            vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=3, requester="operator")
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The key file cannot be written: the outcome is recorded as failed.
    failing = VaultService(harness.engine, _FailingToSave(harness.keys), {}, clock=harness.clock)
    with pytest.raises(VaultError, match="could not be written"):
        await failing.set_minimum_decryption_version(1, requester="operator")
    assert harness.keys.load().minimum_decryption_version == 2

    retired = await harness.vault.stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=1, requester="operator")
    )
    assert retired.minimum_version == 1
    assert await _retirement_events(harness) == [
        (2, False, "minimum 1: failed"),
        (2, False, "minimum 1: started"),
        (2, False, "minimum 1: started"),
        (2, False, "minimum 2: started"),
        (2, True, "minimum 1"),
    ]
