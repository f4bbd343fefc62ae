"""A card's seals bind it to its account as well as its token, and the cards sealed before that
(to their token alone, under the data key they were first sealed under) are re-sealed under a
fresh data key: a row given to another account is refused, and a copy of an old row stops
opening once the key version of its day is removed."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.internal_auth import InternalAccess
from remit.vault import admin
from remit.vault.admin import AdminError, reseal_cards
from remit.vault.background import REQUESTER, start_background
from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import (
    CardBinding,
    KeyRing,
    SealFormat,
    VaultCryptoError,
    cvc_key_hour,
    open_card,
)
from remit.vault.domain import StoredCard
from remit.vault.keystore import FileKeyStore
from remit.vault.repository import SqlVaultRepository
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.fake_acquirer import running_acquirer
from tests.support.locks import until_a_session_waits_on_a_lock
from tests.support.vault import (
    RunningVault,
    cvc_sealed_before_cvc_keys,
    damage_sealed_card,
    dump_database,
    running_vault,
    sealed_token_bound,
    store_token_bound,
)

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
# Only a guard against a hang: the background's first round runs at once.
BACKGROUND_GUARD_S = 30.0


async def _tokenize(vault: RunningVault, number: str = VISA, cvc: str | None = None) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=12, exp_year=2030, requester="test"
    )
    if cvc is not None:
        request.cvc = cvc
    return (await vault.stub.TokenizeCard(request)).vault_token


def _forward(
    token: str, reference: str, account: str = "acct_1"
) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id=account, vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


async def _forwarded(
    vault: RunningVault, token: str, reference: str
) -> vault_pb2.ForwardAuthorizationResponse:
    return await vault.stub.ForwardAuthorization(_forward(token, reference))


async def _stored(engine: AsyncEngine, token: str) -> StoredCard:
    async with engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    return card


async def _token_bound(
    harness: VaultHarness, number: str = VISA, cvc: str | None = None, *, legacy_cvc: bool = False
) -> str:
    """A card as a vault before migration 0006 stored it: sealed to its token alone. Its CVC
    under the hour's CVC key, or (`legacy_cvc`) under its data key, as before CVC keys."""
    token = await _tokenize(harness.vault, number)
    ring = harness.keys.load().with_cvc_keys([cvc_key_hour(START)], START)
    with harness.keys.locked():
        harness.keys.save_cvc_keys(ring.cvc_keys)
    cvc_key = None if cvc is None or legacy_cvc else ring.cvc_keys[cvc_key_hour(START)]
    sealed = sealed_token_bound(ring, token, number, None if legacy_cvc else cvc, cvc_key)
    if cvc is not None and legacy_cvc:
        sealed = replace(
            sealed, cvc_ciphertext=cvc_sealed_before_cvc_keys(ring, token, sealed, cvc)
        )
    async with harness.engine.begin() as db:
        await store_token_bound(db, token, sealed)
        if cvc is not None:
            await db.execute(
                text("UPDATE cards SET cvc_expires_at = :e WHERE token = :t"),
                {"e": START + timedelta(hours=1), "t": token},
            )
    return token


def _data_key(ring: KeyRing, card: StoredCard) -> bytes:
    """The card's data key, unwrapped as the vault does (for the test to compare)."""
    sealed = card.sealed
    binding = CardBinding(card.token, "acct_1", sealed.seal_format, card_metadata(card))
    wrapped = sealed.wrapped_data_key
    kek = ring.versions[sealed.kek_version].material
    associated = binding.associated("data-key", sealed.kek_name, sealed.kek_version)
    return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], associated)


async def _reseal_events(vault: RunningVault) -> list[tuple[str, str, str, bool]]:
    listed = await vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_RESEAL, limit=100)
    )
    return sorted((e.vault_token, e.account_id, e.requester, e.succeeded) for e in listed.data)


async def test_a_card_given_to_another_account_is_refused_as_tampered_and_audited(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _tokenize(harness.vault, cvc="314")
    async with harness.engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET account_id = 'acct_2' WHERE token = :t"), {"t": token}
        )

    with caplog.at_level(logging.DEBUG):
        for attempt, marker in enumerate(("2", "1")):
            # Claiming the token-bound format on top does not help: its seals name acct_1.
            async with harness.engine.begin() as db:
                await db.execute(
                    text(f"UPDATE cards SET seal_format = {marker} WHERE token = :t"),  # noqa: S608
                    {"t": token},
                )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await harness.vault.stub.ForwardAuthorization(
                    _forward(token, f"op_{attempt}", account="acct_2")
                )
            assert caught.value.code() == grpc.StatusCode.DATA_LOSS
            detail = detail_from_rpc_error(caught.value)
            assert detail is not None
            assert detail.code == "vault_ciphertext_invalid"
            assert VISA not in str(caught.value)
            assert "314" not in str(caught.value.details())

    assert harness.acquirer.requests == []
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD)
    )
    assert sorted((e.vault_token, e.account_id, e.reference, e.succeeded) for e in listed.data) == [
        (token, "acct_2", "op_0", False),
        (token, "acct_2", "op_1", False),
    ]
    assert VISA not in caplog.text
    assert re.search(r"(?<![0-9A-Za-z])314(?![0-9A-Za-z])", caplog.text) is None
    # The CVC stays for its own account's authorization, were the row given back.
    assert (await _stored(harness.engine, token)).sealed.cvc_ciphertext is not None


async def test_a_token_bound_card_opens_is_resealed_by_the_background_and_forwards_the_same_card(
    harness: VaultHarness,
) -> None:
    marked = await _token_bound(harness, VISA, "314")
    legacy = await _token_bound(harness, "5555555555554444", "737", legacy_cvc=True)
    # Sealed the old way, it opens: the first forward of `marked` sends its number and CVC.
    await harness.vault.stub.ForwardAuthorization(_forward(marked, "op_before"))
    before = {token: await _stored(harness.engine, token) for token in (marked, legacy)}
    status = await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert status.token_bound_cards == 2

    stop = asyncio.Event()
    tasks = start_background(harness.vault.service, stop, reseal_interval_s=0.05)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BACKGROUND_GUARD_S
    try:
        while (
            await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
        ).token_bound_cards:
            if loop.time() > deadline:
                raise AssertionError(f"the cards were not re-sealed within {BACKGROUND_GUARD_S}s")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    for token, old in before.items():
        new = (await _stored(harness.engine, token)).sealed
        assert new.seal_format is SealFormat.METADATA_BOUND
        assert new.wrapped_data_key != old.sealed.wrapped_data_key
        assert new.number_ciphertext != old.sealed.number_ciphertext
    # The legacy CVC, still held, is now under its hour's CVC key, never the data key.
    assert (await _stored(harness.engine, legacy)).sealed.cvc_ciphertext is not None
    dump = await dump_database(harness.engine)
    assert legacy in dump  # the dump really holds the rows
    for plaintext in (VISA, "5555555555554444"):
        assert plaintext not in dump
        assert plaintext.encode().hex() not in dump
    await harness.vault.stub.ForwardAuthorization(_forward(marked, "op_after"))
    await harness.vault.stub.ForwardAuthorization(_forward(legacy, "op_legacy"))
    sent = [(r.card_number, r.cvc) for r in harness.acquirer.requests]
    assert sent == [(VISA, "314"), (VISA, ""), ("5555555555554444", "737")]
    assert await _reseal_events(harness.vault) == [
        (token, "acct_1", REQUESTER, True) for token in sorted((marked, legacy))
    ]
    # Once re-sealed, the row is bound to its account like any card stored since.
    async with harness.engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET account_id = 'acct_2' WHERE token = :t"), {"t": marked}
        )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(marked, "op_moved", "acct_2"))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS


async def test_a_copy_of_an_old_row_no_longer_opens_once_resealed_rotated_and_retired(
    harness: VaultHarness,
) -> None:
    """The copy a WAL segment or a backup keeps of a token-bound row: its number and its CVC
    (sealed under the data key before CVC keys) open with the card's data key. A re-wrap kept
    that data key, so the current row handed it to whoever held the key file; a re-seal
    replaces it, and removing the version that wrapped the old one leaves the copy unreadable."""
    stub = harness.vault.stub
    token = await _token_bound(harness, VISA, "737", legacy_cvc=True)
    stored = await _stored(harness.engine, token)
    copy, metadata = stored.sealed, card_metadata(stored)
    assert open_card(harness.keys.load(), token, "acct_1", copy, metadata=metadata).cvc is not None
    old_data_key = _data_key(harness.keys.load(), stored)

    progress = await stub.ResealCards(vault_pb2.ResealCardsRequest(requester="operator"))
    assert (progress.resealed, progress.remaining) == (1, 0)
    await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    await stub.RewrapDataKeys(vault_pb2.RewrapDataKeysRequest(requester="operator"))
    await stub.SetMinimumDecryptionVersion(
        vault_pb2.SetMinimumDecryptionVersionRequest(minimum_version=2, requester="operator")
    )
    await stub.RemoveKeyVersion(vault_pb2.RemoveKeyVersionRequest(version=1, requester="op"))

    ring = FileKeyStore(harness.keys.path).load()
    assert 1 not in ring.versions
    current_card = await _stored(harness.engine, token)
    current = current_card.sealed
    with pytest.raises(VaultCryptoError):
        open_card(ring, token, "acct_1", copy, metadata=metadata)
    # Nor with the data key the current row holds, which a re-wrap would have kept.
    assert _data_key(ring, current_card) != old_data_key
    with pytest.raises(VaultCryptoError):
        open_card(
            ring, token, "acct_1", replace(current, number_ciphertext=copy.number_ciphertext),
            metadata=metadata,
        )  # fmt: skip
    assert open_card(ring, token, "acct_1", current, metadata=metadata).number.reveal() == VISA
    await stub.ForwardAuthorization(_forward(token, "op_1"))
    assert [(r.card_number, r.cvc) for r in harness.acquirer.requests] == [(VISA, "737")]


@asynccontextmanager
async def _reseal_held_before_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Event]]:
    """Re-seals that, once they have written a card anew, hold their transaction (and the
    card's row) open until the second event is set; the first is set once one has."""
    written, release = asyncio.Event(), asyncio.Event()
    save = SqlVaultRepository.save_reseal

    async def held(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> None:
        await save(self, *args, **kwargs)
        written.set()
        await asyncio.wait_for(release.wait(), BACKGROUND_GUARD_S)

    monkeypatch.setattr(SqlVaultRepository, "save_reseal", held)
    try:
        yield written, release
    finally:
        release.set()


async def test_a_forward_that_read_the_card_before_its_reseal_still_sends_the_cvc_it_took(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forward opens the card as it read it, then takes the CVC, which by then the re-seal
    has sealed anew: the one it took is the one it sends, and the card is left without one."""
    token = await _token_bound(harness, VISA, "737", legacy_cvc=True)
    async with _reseal_held_before_commit(monkeypatch) as (written, release):
        resealing = asyncio.create_task(harness.vault.service.reseal_all(requester="test"))
        await asyncio.wait_for(written.wait(), BACKGROUND_GUARD_S)
        forwarding = asyncio.create_task(_forwarded(harness.vault, token, "op_1"))
        await until_a_session_waits_on_a_lock(harness.engine, contender=forwarding)
        release.set()
        assert await resealing == 1
        reply = await forwarding
    assert reply.result.approved
    assert [(r.card_number, r.cvc) for r in harness.acquirer.requests] == [(VISA, "737")]
    card = await _stored(harness.engine, token)
    assert (card.sealed.seal_format, card.sealed.cvc_ciphertext) == (
        SealFormat.METADATA_BOUND,
        None,
    )


async def test_vault_processes_resealing_at_once_reseal_each_card_once(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    FileKeyStore(path).ensure_exists()
    clock = FixedClock(START)
    numbers = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"]
    async with (
        running_acquirer() as (acquirer, target),
        running_vault(vault_engine, FileKeyStore(path), {"acquirer": target}, clock) as first,
        running_vault(vault_engine, FileKeyStore(path), {"acquirer": target}, clock) as second,
    ):
        harness = VaultHarness(first, acquirer, FileKeyStore(path), clock, vault_engine)
        tokens = [await _token_bound(harness, number) for number in numbers]

        counts = await asyncio.gather(
            first.service.reseal_all(requester="first", batch_size=1),
            second.service.reseal_all(requester="second", batch_size=1),
            first.service.reseal_all(requester="first", batch_size=3),
        )

        assert sum(counts) == len(numbers)
        events = await _reseal_events(first)
        assert sorted(event[0] for event in events) == sorted(tokens)
        for index, token in enumerate(tokens):
            await second.stub.ForwardAuthorization(_forward(token, f"op_{index}"))
        assert [r.card_number for r in acquirer.requests] == numbers


async def test_a_card_that_will_not_open_is_passed_over_and_logged_without_card_data(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = await _token_bound(harness, VISA, "314")
    good = await _token_bound(harness, "5555555555554444", "737", legacy_cvc=True)
    async with harness.engine.begin() as db:
        await damage_sealed_card(db, damaged)

    with caplog.at_level(logging.DEBUG):
        assert await harness.vault.service.reseal_all(requester="test", batch_size=1) == 1

    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert line == (
        f"could not re-seal 1 cards: {damaged} (vault_ciphertext_invalid); they stay sealed as "
        "they were, under their data key"
    )
    for secret in (VISA, "5555555555554444"):
        assert secret not in caplog.text
    for cvc in ("314", "737"):
        assert re.search(rf"(?<![0-9A-Za-z]){cvc}(?![0-9A-Za-z])", caplog.text) is None
    status = await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert status.token_bound_cards == 1
    assert (await _stored(harness.engine, good)).sealed.seal_format is SealFormat.METADATA_BOUND


async def test_the_reseal_command_reseals_every_card_and_says_so_when_one_will_not_open(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, access = harness.vault.target, InternalAccess()
    first = await _token_bound(harness, VISA)
    assert "cards to re-seal            1" in await admin._status(target, access)

    lines = await reseal_cards(target, access)

    assert lines[0].startswith("re-sealed 1 cards under fresh data keys")
    assert "cards to re-seal            0" in await admin._status(target, access)
    assert (await _stored(harness.engine, first)).sealed.seal_format is SealFormat.METADATA_BOUND
    damaged = await _token_bound(harness, "5555555555554444")
    await _token_bound(harness, "378282246310005")
    async with harness.engine.begin() as db:
        await damage_sealed_card(db, damaged, "wrapped_data_key")
    monkeypatch.setattr(admin, "STALL_S", 0.2)
    with pytest.raises(AdminError) as stopped:
        await asyncio.wait_for(reseal_cards(target, access), BACKGROUND_GUARD_S)
    assert str(stopped.value).startswith("1 cards were re-sealed here, but 1 could not be")


async def test_a_forward_whose_ring_predates_the_cvc_key_a_reseal_made_still_sends_the_cvc(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CVC sealed before CVC keys, stored in an hour whose CVC key no vault has made: the
    forward loads its key ring and opens the card; a re-seal then makes that hour's key and
    seals the CVC under it; the forward takes the CVC as the re-seal left it. Its ring, loaded
    before the key existed, lacks the key: the key file is read again, and the CVC goes."""
    token = await _token_bound(harness, VISA, "737", legacy_cvc=True)
    with harness.keys.locked():
        harness.keys.save_cvc_keys({})
    # Stored in the hour before: the re-seal makes the key of a past hour.
    async with harness.engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET cvc_expires_at = :e WHERE token = :t"),
            {"e": START + timedelta(minutes=30), "t": token},
        )
    take = SqlVaultRepository.audit_forward_taking_cvc
    resealed: list[int] = []

    async def resealed_first(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        assert not harness.keys.load().cvc_keys  # the forward's ring has no CVC key
        resealed.append(await harness.vault.service.reseal_all(requester="test"))
        assert cvc_key_hour(START) - 1 in harness.keys.load().cvc_keys
        return await take(self, *args, **kwargs)

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", resealed_first)
    reply = await _forwarded(harness.vault, token, "op_1")
    assert resealed == [1]
    assert reply.result.approved
    assert [(r.card_number, r.cvc) for r in harness.acquirer.requests] == [(VISA, "737")]
