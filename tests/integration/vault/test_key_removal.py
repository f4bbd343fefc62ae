"""Removing a retired key version from the key file: when it is allowed, what it refuses, and
what it puts beyond use (the data keys of deleted cards wrapped under it, wherever copies of
them are left)."""

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.grpcutil.internal_auth import InternalAccess
from remit.vault.admin import remove_key_version
from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import VaultCryptoError, encode_key, open_card
from remit.vault.keystore import FileKeyStore
from remit.vault.repository import SqlVaultRepository
from remit.vault.service import VaultService
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.vault import DyingOnceTheKeyFileChanged, ProcessDiedError

pytestmark = pytest.mark.anyio


async def _tokenize(harness: VaultHarness, number: str = "4242424242424242") -> str:
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


async def _remove(harness: VaultHarness, version: int) -> vault_pb2.RemoveKeyVersionResponse:
    return await harness.vault.stub.RemoveKeyVersion(
        vault_pb2.RemoveKeyVersionRequest(version=version, requester="operator")
    )


async def _refused(harness: VaultHarness, version: int) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _remove(harness, version)
    return caught.value


async def _retire_below(harness: VaultHarness, minimum: int) -> None:
    await harness.vault.stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=minimum, requester="operator")
    )


async def _rotate_rewrap_retire(harness: VaultHarness) -> int:
    """A new current version, every live data key moved to it, and every older one retired."""
    stub = harness.vault.stub
    version = (await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))).key_version
    progress = await stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="operator"))
    assert progress.remaining == 0
    await _retire_below(harness, version)
    return version


async def _removal_events(
    harness: VaultHarness, *, started: bool = False
) -> list[tuple[int, bool, str]]:
    """The removals' outcomes; or, `started`, the records of removals about to change the key
    file (one before each that passed its checks)."""
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_REMOVE_KEY_VERSION)
    )
    # Sorted: the fixed clock gives every event the same time, so the log's order is the ids'.
    return sorted(
        (e.key_version, e.succeeded, e.requester)
        for e in events.data
        if e.purpose.endswith(": started") == started
    )


async def test_a_retired_version_is_removed_and_other_cards_still_work(
    harness: VaultHarness,
) -> None:
    old_card = await _tokenize(harness)
    removed_material = encode_key(harness.keys.load().versions[1].material)
    # Another vault process sharing the key file, which has read (and cached) it already.
    other_process = FileKeyStore(harness.keys.path)
    assert 1 in other_process.load().versions
    assert await _rotate_rewrap_retire(harness) == 2

    lines = await remove_key_version(harness.vault.target, InternalAccess(), 1)

    assert lines[0].startswith("key version 1 removed from the key file")
    assert removed_material not in harness.keys.path.read_text()
    assert sorted(harness.keys.load().versions) == [2]
    assert sorted(other_process.load().versions) == [2]
    status = await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert [v.version for v in status.versions] == [2]
    assert await _removal_events(harness) == [(1, True, "cli")]
    assert await _removal_events(harness, started=True) == [(1, False, "cli")]
    # The card stored under version 1, re-wrapped since, and a new one both still work.
    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=old_card, requester="t")
    )
    assert details.card.last4 == "4242"
    new_card = await _tokenize(harness, "5555555555554444")
    assert await _authorize(harness, old_card, "op_old")
    assert await _authorize(harness, new_card, "op_new")
    assert [r.card_number for r in harness.acquirer.requests] == [
        "4242424242424242",
        "5555555555554444",
    ]
    # A removed version's number is never handed out again.
    rotated = await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    assert rotated.key_version == 3


async def test_removal_is_refused_while_a_card_uses_the_version(harness: VaultHarness) -> None:
    await _tokenize(harness)
    await _tokenize(harness, "5555555555554444")
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    # Retired behind the service's back, as a hand-edited key file would be, with two cards
    # still wrapped under it.
    harness.keys.save(harness.keys.load().with_minimum(2))

    refused = await _refused(harness, 1)

    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 cards still have their data key wrapped under key version 1" in str(refused.details())
    assert sorted(harness.keys.load().versions) == [1, 2]
    assert await _removal_events(harness) == [(1, False, "operator")]
    assert await _removal_events(harness, started=True) == []


async def test_the_current_version_is_never_removed(harness: VaultHarness) -> None:
    refused = await _refused(harness, 1)
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "current version" in str(refused.details())
    assert sorted(harness.keys.load().versions) == [1]


async def test_a_version_not_retired_is_not_removed(harness: VaultHarness) -> None:
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    refused = await _refused(harness, 1)
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not retired" in str(refused.details())
    assert sorted(harness.keys.load().versions) == [1, 2]


async def test_an_unknown_version_is_refused(harness: VaultHarness) -> None:
    await _rotate_rewrap_retire(harness)
    assert (await _refused(harness, 7)).code() == grpc.StatusCode.NOT_FOUND
    assert (await _refused(harness, 0)).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await _remove(harness, 1)).version == 1
    # Removed already: the key file no longer knows it.
    again = await _refused(harness, 1)
    assert again.code() == grpc.StatusCode.NOT_FOUND
    assert "no key version 1" in str(again.details())
    assert await _removal_events(harness) == [(1, False, "operator"), (1, True, "operator"),
                                              (7, False, "operator")]  # fmt: skip


async def test_a_deleted_cards_old_row_bytes_no_longer_unwrap(harness: VaultHarness) -> None:
    """The row versions a deletion leaves, the WAL and backups still hold the card's sealed
    number and its data key wrapped under the version of the day; once that version is gone
    from the key file they unwrap with nothing, even with the retirement floor lowered."""
    kept = await _tokenize(harness)
    deleted = await _tokenize(harness, "5555555555554444")
    async with harness.engine.connect() as db:
        before = await SqlVaultRepository(db).get_card(deleted)
    assert before is not None
    assert before.sealed.kek_version == 1
    await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=deleted, requester="test")
    )
    await _rotate_rewrap_retire(harness)
    # Retiring alone leaves the old bytes one edit of the key file away from the number.
    ring, metadata = harness.keys.load().with_minimum(1), card_metadata(before)
    reopened = open_card(ring, deleted, "acct_1", before.sealed, metadata=metadata)
    assert reopened.number.reveal()[-4:] == "4444"

    await _remove(harness, 1)

    with pytest.raises(VaultCryptoError) as caught:
        open_card(
            harness.keys.load().with_minimum(1), deleted, "acct_1", before.sealed,
            metadata=metadata,
        )  # fmt: skip
    assert caught.value.code == "vault_key_missing"
    assert await _authorize(harness, kept, "op_kept")


def _key_file_lock_is_free(keys: FileKeyStore) -> bool:
    fd = os.open(keys.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.fixture
async def inserts_held(harness: VaultHarness) -> AsyncIterator[AsyncConnection]:
    """A transaction that keeps every insert into `cards` waiting until it ends: a
    tokenization started meanwhile stops just before storing its card."""
    async with harness.engine.connect() as db:
        transaction = await db.begin()
        await db.execute(text("LOCK TABLE cards IN SHARE MODE"))
        try:
            yield db
        finally:
            if transaction.is_active:
                await transaction.rollback()


async def test_a_removal_waits_for_a_tokenization_that_read_the_version(
    harness: VaultHarness, inserts_held: AsyncConnection
) -> None:
    """A card sealed under version 1 but not yet committed when version 1 is removed would be
    stored under a key that no longer exists. The removal waits for it and counts it."""
    tokenizing = asyncio.create_task(_tokenize(harness))
    await until_a_session_waits_on_a_lock(harness.engine, contender=tokenizing)
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    harness.keys.save(harness.keys.load().with_minimum(2))
    removing = asyncio.create_task(_remove(harness, 1))
    await until_a_session_waits_on_a_lock(harness.engine, contender=removing, sessions=2)
    # Waiting, it does not hold the key file's lock, whose `flock` would block the whole of
    # any vault process that asked for it, the one whose tokenization it waits for included.
    assert _key_file_lock_is_free(harness.keys)

    await inserts_held.rollback()
    token = await tokenizing
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await removing

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "1 cards still have" in str(refused.value.details())
    # The card's key version is still there: allowed again, its data key moves on.
    await _retire_below(harness, 1)
    await harness.vault.stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="op"))
    assert await _authorize(harness, token, "op_in_flight")


async def test_a_retirement_waits_for_a_tokenization_that_read_the_version(
    harness: VaultHarness, inserts_held: AsyncConnection
) -> None:
    """Retired versions never wrap a new data key, even one a tokenization started before
    the rotation is about to store: the retirement waits for it and counts it."""
    tokenizing = asyncio.create_task(_tokenize(harness))
    await until_a_session_waits_on_a_lock(harness.engine, contender=tokenizing)
    await harness.vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    retiring = asyncio.create_task(_retire_below(harness, 2))
    await until_a_session_waits_on_a_lock(harness.engine, contender=retiring, sessions=2)

    await inserts_held.rollback()
    await tokenizing
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await retiring

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert harness.keys.load().minimum_decryption_version == 1


async def test_a_removal_whose_transaction_does_not_commit_is_in_the_audit_log_as_started(
    harness: VaultHarness,
) -> None:
    """The removal was recorded in the transaction that commits after the key file is saved:
    a vault dying in between, or a commit that failed, left a removal with no record."""
    await _rotate_rewrap_retire(harness)
    dying = VaultService(
        harness.engine, DyingOnceTheKeyFileChanged(harness.keys), {}, clock=harness.clock
    )
    with pytest.raises(ProcessDiedError):
        await dying.remove_key_version(1, requester="operator")
    assert sorted(harness.keys.load().versions) == [2]
    assert await _removal_events(harness, started=True) == [(1, False, "operator")]
    assert await _removal_events(harness) == []
