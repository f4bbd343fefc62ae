"""Shredding a card or destroying its CVC writes new row versions; the old versions keep the
sealed bytes until vacuumed. The vault's pruning step removes those versions."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
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

# One round of pruning need not remove every dead version: VACUUM leaves those on a page another
# session has pinned at that instant (a scan, the checkpointer writing it out; it does not wait
# for the pin) and those a snapshot older than the shred can still see. The next round removes
# them, so the tests let pruning run again until it has. A pin lasts microseconds, and but for
# those the tests below hold on purpose no snapshot here outlives the shred by more than an
# autovacuum's ANALYZE takes: the bound is only reached when pruning does not work at all.
PRUNED_WITHIN_S = 30.0
# The background's pruning interval in these tests, so that a missed round is soon made up.
PRUNE_EVERY_S = 0.05


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


async def _tuples_once_unheld(
    engine: AsyncEngine, secrets: list[bytes], between: Callable[[], Awaitable[None]]
) -> list[bytes]:
    """The row versions on disk as soon as none of them holds `secrets`, running `between` (a
    round of pruning, or a pause while the background runs its own) after each look that finds
    some still there; fails after `PRUNED_WITHIN_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PRUNED_WITHIN_S
    while True:
        tuples = await _tuples_on_disk(engine)
        held = _holding(tuples, secrets)
        if not held:
            return tuples
        if loop.time() > deadline:
            raise AssertionError(
                f"{len(held)} shredded value(s) still in a row version after {PRUNED_WITHIN_S}s"
            )
        await between()


async def _vacuums_of_cards(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        query = "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'cards'::regclass"
        return int((await db.execute(text(query))).scalar_one())


async def _until_vacuumed_after(engine: AsyncEngine, count: int) -> None:
    """Return once `cards` has been vacuumed more than `count` times (a round of pruning has
    ended); fail after `PRUNED_WITHIN_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PRUNED_WITHIN_S
    while await _vacuums_of_cards(engine) <= count:
        if loop.time() > deadline:
            raise AssertionError(f"no round of pruning ended within {PRUNED_WITHIN_S}s")
        await asyncio.sleep(PRUNE_EVERY_S)


def _pause() -> Awaitable[None]:
    return asyncio.sleep(PRUNE_EVERY_S)


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

    after = await _tuples_once_unheld(harness.engine, secrets, service.prune_shredded)
    assert len(after) == 2  # the shredded card's last version and the live card
    assert _holding(after, secrets) == []
    kept = await _sealed_bytes(harness.engine, live.token)
    assert _holding(after, kept) == kept
    assert any(token.encode() in stored for stored in after)


async def test_the_vaults_background_prunes_shredded_row_versions(harness: VaultHarness) -> None:
    service = harness.vault.service
    _, secrets = await _shred_after_use(service, harness)
    stop = asyncio.Event()
    tasks = start_background(service, stop, prune_interval_s=PRUNE_EVERY_S)
    try:
        after = await _tuples_once_unheld(harness.engine, secrets, _pause)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(after) == 1


@asynccontextmanager
async def _page_pinned(engine: AsyncEngine) -> AsyncIterator[None]:
    """Another session keeps the `cards` page pinned: a cursor stopped after its first row
    holds the page its scan is on."""
    async with engine.connect() as reader:
        await reader.execute(text("DECLARE pinning CURSOR FOR SELECT token FROM cards"))
        await reader.execute(text("FETCH 1 FROM pinning"))
        yield


@asynccontextmanager
async def _snapshot_taken_now(engine: AsyncEngine) -> AsyncIterator[None]:
    """Another session keeps a snapshot taken now, in which later deletions are not seen."""
    async with engine.connect() as reader:
        await reader.execution_options(isolation_level="REPEATABLE READ")
        await reader.execute(text("SELECT 1"))
        yield


async def _background_prunes_once_released(
    harness: VaultHarness, secrets: list[bytes], held: AsyncExitStack
) -> None:
    """While `held` keeps the dead versions out of pruning's reach, a round of the background
    ends and leaves them; once it lets go, a later round removes them."""
    vacuums = await _vacuums_of_cards(harness.engine)
    stop = asyncio.Event()
    tasks = start_background(harness.vault.service, stop, prune_interval_s=PRUNE_EVERY_S)
    try:
        await _until_vacuumed_after(harness.engine, vacuums)
        assert _holding(await _tuples_on_disk(harness.engine), secrets) == secrets
        await held.aclose()
        after = await _tuples_once_unheld(harness.engine, secrets, _pause)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(after) == 1


async def test_the_background_prunes_the_versions_a_round_found_pinned(
    harness: VaultHarness,
) -> None:
    async with AsyncExitStack() as held:
        _, secrets = await _shred_after_use(harness.vault.service, harness)
        await held.enter_async_context(_page_pinned(harness.engine))
        await _background_prunes_once_released(harness, secrets, held)


async def test_the_background_prunes_the_versions_an_older_snapshot_kept(
    harness: VaultHarness,
) -> None:
    async with AsyncExitStack() as held:
        await held.enter_async_context(_snapshot_taken_now(harness.engine))
        _, secrets = await _shred_after_use(harness.vault.service, harness)
        await _background_prunes_once_released(harness, secrets, held)
