"""Shredding a card or destroying its CVC writes new row versions; the old versions keep the
sealed bytes until vacuumed. The vault's pruning step removes those versions."""

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.secrets import Secret
from remit.vault.background import start_background
from remit.vault.service import VaultService
from tests.integration.vault.conftest import VaultHarness
from tests.support.heap_pages import stored_tuples

pytestmark = pytest.mark.anyio

# The background's first round runs as soon as it starts; this many looks only bound the wait.
LOOKS = 400


async def _sealed_bytes(engine: AsyncEngine, token: str) -> list[bytes]:
    async with engine.connect() as db:
        row = (
            await db.execute(
                text(
                    "SELECT wrapped_data_key, number_ciphertext, cvc_ciphertext "
                    "FROM cards WHERE token = :t"
                ),
                {"t": token},
            )
        ).one()
    return [bytes(value) for value in row if value]


async def _tuples_on_disk(engine: AsyncEngine) -> list[bytes]:
    """Every row version the `cards` table's file points at, after a checkpoint wrote its
    pages."""
    async with engine.connect() as db:
        await db.execute(text("CHECKPOINT"))
        data_dir = (await db.execute(text("SHOW data_directory"))).scalar_one()
        relative = (await db.execute(text("SELECT pg_relation_filepath('cards')"))).scalar_one()
    return list(stored_tuples((Path(data_dir) / relative).read_bytes()))


async def _shred_after_use(service: VaultService, harness: VaultHarness) -> tuple[str, list[bytes]]:
    """A card whose CVC was destroyed and which was then deleted: three row versions, two of
    them dead and holding its sealed number and wrapped data key (one its CVC too)."""
    card = await service.tokenize(
        "acct_1", Secret("4242424242424242"), 12, 2030, Secret("314"), requester="test"
    )
    secrets = await _sealed_bytes(harness.engine, card.token)
    assert len(secrets) == 3
    harness.clock.advance(2 * 60 * 60)
    assert await service.drop_expired_cvcs() == 1
    assert await service.delete_card("acct_1", card.token, requester="test")
    assert await _sealed_bytes(harness.engine, card.token) == []
    return card.token, secrets


def _holding(tuples: list[bytes], secrets: list[bytes]) -> list[bytes]:
    return [secret for secret in secrets if any(secret in stored for stored in tuples)]


async def test_pruning_removes_the_row_versions_holding_shredded_bytes(
    harness: VaultHarness,
) -> None:
    service = harness.vault.service
    token, secrets = await _shred_after_use(service, harness)
    live = await service.tokenize(
        "acct_1", Secret("5555555555554444"), 12, 2030, None, requester="test"
    )
    before = await _tuples_on_disk(harness.engine)
    assert len(before) == 4
    assert _holding(before, secrets) == secrets

    await service.prune_shredded()

    after = await _tuples_on_disk(harness.engine)
    assert len(after) == 2  # the shredded card's last version and the live card
    assert _holding(after, secrets) == []
    kept = await _sealed_bytes(harness.engine, live.token)
    assert _holding(after, kept) == kept
    assert any(token.encode() in stored for stored in after)


async def test_the_vaults_background_prunes_shredded_row_versions(harness: VaultHarness) -> None:
    service = harness.vault.service
    _, secrets = await _shred_after_use(service, harness)
    stop = asyncio.Event()
    tasks = start_background(service, stop)
    try:
        for _ in range(LOOKS):
            if not _holding(await _tuples_on_disk(harness.engine), secrets):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(await _tuples_on_disk(harness.engine)) == 1
