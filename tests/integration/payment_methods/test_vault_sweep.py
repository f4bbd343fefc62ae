"""The worker's sweep of vault cards that no payment method or token references, with a real
vault over gRPC and the core's database."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret
from remit.payment_methods.domain import NewPaymentMethod, StoredVaultCard, VaultCardPage
from remit.payment_methods.repository import SqlPaymentMethodRepository
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payment_methods.vault_sweep import (
    WATERMARK,
    SweepCounts,
    SweptVault,
    UnreferencedCardSweep,
)
from remit.storage.engine import dispose, make_engine
from remit.vault.keystore import FileKeyStore
from remit_api.vault.v1 import vault_pb2
from tests.support.fake_acquirer import running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=24)


@dataclass
class SpyVault:
    """The real vault, with each listing's cursor and cards recorded and chosen deletions
    failing."""

    vault: GrpcCardVault
    failing: set[str] = field(default_factory=set)
    cursors: list[str | None] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)

    async def cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None
    ) -> VaultCardPage:
        self.cursors.append(starting_after)
        listing = await self.vault.cards_created_before(
            cutoff, limit=limit, starting_after=starting_after
        )
        self.listed += [card.vault_token for card in listing.cards]
        return listing

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        if vault_token in self.failing:
            raise RemitError("The vault is unavailable.", kind=ErrorKind.UNAVAILABLE)
        return await self.vault.delete_card(account_id, vault_token)


@dataclass
class Bench:
    account_id: str
    payment_methods: PaymentMethodsService
    vault: RunningVault
    clock: FixedClock
    core_engine: AsyncEngine

    def worker_vault(self) -> GrpcCardVault:
        return GrpcCardVault(self.vault.channel, requester="worker")

    def spy(self) -> SpyVault:
        return SpyVault(self.worker_vault())

    def sweep(
        self,
        *,
        page_size: int = 100,
        core: AsyncEngine | None = None,
        vault: SweptVault | None = None,
        max_deletions: int = 1000,
        max_unreferenced_share: float = 0.5,
    ) -> UnreferencedCardSweep:
        return UnreferencedCardSweep(
            vault or self.worker_vault(),
            core or self.core_engine,
            grace=GRACE,
            max_deletions=max_deletions,
            max_unreferenced_share=max_unreferenced_share,
            clock=self.clock,
            page_size=page_size,
        )

    async def use_core(self) -> None:
        """A payment method on a test card, which the vault leaves out of its listing: the core
        database is in use without referencing any card the sweep sees."""
        await self.payment_methods.create(
            self.account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
        )

    async def store_card(self) -> str:
        """A card the facade stored and then never handed to the core."""
        tokenized = await self.vault.service.tokenize(
            self.account_id, Secret("4242424242424242"), 11, 2031, Secret("123"),
            requester="api",
        )  # fmt: skip
        return tokenized.token

    async def store_referenced_card(self) -> str:
        vault_token = await self.store_card()
        await self.payment_methods.create(
            self.account_id, NewPaymentMethod(vault_token=vault_token)
        )
        return vault_token

    async def store_cards_in_order(self, count: int) -> list[str]:
        """Unreferenced cards a second apart, so the listing's order is theirs."""
        stored = []
        for _ in range(count):
            stored.append(await self.store_card())
            self.clock.advance(1)
        return stored

    async def card_exists(self, vault_token: str) -> bool:
        try:
            await self.vault.stub.GetCardDetails(
                vault_pb2.GetCardDetailsRequest(
                    account_id=self.account_id, vault_token=vault_token, requester="test"
                )
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True


@pytest.fixture
async def bare_bench(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Bench]:
    """A running vault beside a core database that holds no payment method or token yet."""
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    clock = FixedClock(START)
    account = (await AccountsService(core_engine).create_account()).account.id
    try:
        async with (
            running_acquirer() as (_, target),
            running_vault(vault_engine, keys, {"acquirer": target}, clock=clock) as vault,
        ):
            methods = PaymentMethodsService(core_engine, GrpcCardVault(vault.channel))
            yield Bench(account, methods, vault, clock, core_engine)
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


@pytest.fixture
async def bench(bare_bench: Bench) -> Bench:
    """A bench whose core database is in use, as a running platform's is."""
    await bare_bench.use_core()
    return bare_bench


async def test_an_old_card_nothing_references_is_deleted_and_the_deletion_audited(
    bench: Bench,
) -> None:
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    counts = await bench.sweep().run()
    assert counts == SweepCounts(checked=1, referenced=0, deleted=1, failed=0)
    assert not await bench.card_exists(orphan)
    events = await bench.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(vault_token=orphan, action=vault_pb2.AUDIT_ACTION_DELETE)
    )
    assert [event.requester for event in events.data] == ["worker"]


async def test_old_cards_a_payment_method_or_a_token_references_are_kept(bench: Bench) -> None:
    held_by_method = await bench.store_card()
    await bench.payment_methods.create(
        bench.account_id, NewPaymentMethod(vault_token=held_by_method)
    )
    held_by_token = await bench.store_card()
    await bench.payment_methods.create_token(bench.account_id, held_by_token)
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    counts = await bench.sweep().run()
    assert counts == SweepCounts(checked=3, referenced=2, deleted=1, failed=0)
    assert await bench.card_exists(held_by_method)
    assert await bench.card_exists(held_by_token)
    assert not await bench.card_exists(orphan)


async def test_a_card_younger_than_the_grace_period_is_kept(bench: Bench) -> None:
    old = await bench.store_card()
    bench.clock.advance(3600)
    young = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() - 60)  # `young` is 23 h 59 min old
    counts = await bench.sweep().run()
    assert counts.deleted == 1
    assert not await bench.card_exists(old)
    assert await bench.card_exists(young)


async def test_the_sweep_pages_through_more_cards_than_fit_in_one_page(bench: Bench) -> None:
    # Cards stored in the same instant and in later ones, referenced and not, over four pages.
    orphans, held = [], []
    for second in range(4):
        for _ in range(2):
            orphans.append(await bench.store_card())
        kept = await bench.store_card()
        await bench.payment_methods.create(bench.account_id, NewPaymentMethod(vault_token=kept))
        held.append(kept)
        bench.clock.advance(second)
    bench.clock.advance(GRACE.total_seconds() + 1)
    counts = await bench.sweep(page_size=3).run()
    assert counts == SweepCounts(checked=12, referenced=4, deleted=8, failed=0)
    assert [await bench.card_exists(token) for token in orphans] == [False] * len(orphans)
    assert [await bench.card_exists(token) for token in held] == [True] * len(held)
    # The first sweep finished with every card: a second one has none left to look at.
    assert await bench.sweep(page_size=3).run() == SweepCounts()


async def test_a_sweep_that_cannot_reach_the_core_database_deletes_nothing(
    bench: Bench, databases: WorkerDatabases
) -> None:
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    missing = make_url(databases.core_url).set(database="no_such_database")
    unreachable = make_engine(missing.render_as_string(hide_password=False))
    try:
        with pytest.raises(Exception, match="no_such_database"):
            await bench.sweep(core=unreachable).run()
    finally:
        await dispose(unreachable)
    assert await bench.card_exists(orphan)


async def test_the_sweep_logs_counts_and_never_a_token(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    with caplog.at_level(logging.DEBUG, logger="remit"):
        await bench.sweep().run()
    assert "1 deleted" in caplog.text
    assert orphan not in caplog.text
    assert "vtok_" not in caplog.text
    assert "4242424242424242" not in caplog.text


async def test_a_second_run_lists_only_the_cards_after_the_first_runs_mark(bench: Bench) -> None:
    held = await bench.store_referenced_card()
    first_orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    assert await bench.sweep().run() == SweepCounts(2, 1, 1, 0)
    later_orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    spy = bench.spy()
    assert await bench.sweep(vault=spy).run() == SweepCounts(1, 0, 1, 0)
    assert spy.listed == [later_orphan]
    assert not await bench.card_exists(later_orphan)
    assert await bench.card_exists(held)
    assert not await bench.card_exists(first_orphan)


async def test_a_failed_deletion_keeps_the_mark_before_its_page_and_the_next_run_deletes_it(
    bench: Bench,
) -> None:
    held = await bench.store_referenced_card()
    bench.clock.advance(1)
    first, failing, last = await bench.store_cards_in_order(3)
    bench.clock.advance(GRACE.total_seconds())
    spy = bench.spy()
    spy.failing.add(failing)
    # Pages [held, first] and [failing, last]: the second is not finished.
    assert await bench.sweep(page_size=2, vault=spy).run() == SweepCounts(4, 1, 2, 1)
    assert await bench.card_exists(failing)
    assert not await bench.card_exists(last)
    retry = bench.spy()
    assert await bench.sweep(page_size=2, vault=retry).run() == SweepCounts(1, 0, 1, 0)
    assert retry.cursors[0] == first
    assert retry.listed == [failing]
    assert not await bench.card_exists(failing)
    assert await bench.card_exists(held)


async def test_a_mark_the_vault_does_not_know_falls_back_to_a_listing_from_the_oldest(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    held = await bench.store_referenced_card()
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    async with bench.core_engine.begin() as db:
        await SqlPaymentMethodRepository(db).set_vault_sweep_watermark(
            WATERMARK, START, "vtok_from_another_vault"
        )
    spy = bench.spy()
    with caplog.at_level(logging.WARNING, logger="remit"):
        assert await bench.sweep(vault=spy).run() == SweepCounts(2, 1, 1, 0)
    assert spy.cursors == ["vtok_from_another_vault", None]
    assert "listing its cards from the oldest" in caplog.text
    assert await bench.card_exists(held)
    assert not await bench.card_exists(orphan)


async def test_a_core_database_without_payment_methods_or_tokens_deletes_nothing(
    bare_bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    orphans = await bare_bench.store_cards_in_order(3)
    bare_bench.clock.advance(GRACE.total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit"):
        assert await bare_bench.sweep().run() == SweepCounts()
    assert [await bare_bench.card_exists(token) for token in orphans] == [True] * 3
    assert [record.levelno for record in caplog.records] == [logging.ERROR]
    assert "holds no payment method or token" in caplog.text


async def test_a_full_page_mostly_unreferenced_stops_the_sweep_before_deleting_any_of_it(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    held = [await bench.store_referenced_card() for _ in range(9)]
    orphans = await bench.store_cards_in_order(11)
    bench.clock.advance(GRACE.total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit"):
        assert await bench.sweep(page_size=20).run() == SweepCounts(20, 9, 0, 0)
    assert [await bench.card_exists(token) for token in orphans] == [True] * 11
    assert "11 of 20 cards" in caplog.text
    assert "DATABASE_URL" in caplog.text
    # The mark did not pass the page: the next run looks at it again from the start.
    spy = bench.spy()
    await bench.sweep(page_size=20, vault=spy).run()
    assert spy.cursors == [None]
    assert set(spy.listed) == {*held, *orphans}
    assert "REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE" in caplog.text
    # A person who has checked that these are real orphans lifts the rule.
    assert await bench.sweep(page_size=20, max_unreferenced_share=1).run() == SweepCounts(
        20, 9, 11, 0
    )
    assert [await bench.card_exists(token) for token in orphans] == [False] * 11
    assert all([await bench.card_exists(token) for token in held])


async def test_a_full_page_half_unreferenced_is_swept(bench: Bench) -> None:
    for _ in range(10):
        await bench.store_referenced_card()
    orphans = await bench.store_cards_in_order(10)
    bench.clock.advance(GRACE.total_seconds())
    assert await bench.sweep(page_size=20).run() == SweepCounts(20, 10, 10, 0)
    assert [await bench.card_exists(token) for token in orphans] == [False] * 10


async def test_the_deletion_cap_stops_a_run_at_the_cap(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    held = await bench.store_referenced_card()
    bench.clock.advance(1)
    orphans = await bench.store_cards_in_order(5)
    bench.clock.advance(GRACE.total_seconds())
    with caplog.at_level(logging.ERROR, logger="remit"):
        assert await bench.sweep(max_deletions=3).run() == SweepCounts(6, 1, 3, 0)
    assert [await bench.card_exists(token) for token in orphans] == [False] * 3 + [True] * 2
    assert "REMIT_VAULT_SWEEP_MAX_DELETIONS" in caplog.text
    # The next run starts from the same page and deletes the rest.
    assert await bench.sweep(max_deletions=3).run() == SweepCounts(3, 1, 2, 0)
    assert [await bench.card_exists(token) for token in orphans] == [False] * 5
    assert await bench.card_exists(held)


async def test_a_long_run_of_cards_the_vault_leaves_out_does_not_stall_the_sweep(
    bench: Bench, databases: WorkerDatabases
) -> None:
    """Cards the vault leaves out of its listing (here: naming a key version its key ring
    never had) cost it a bounded read per page: the sweep goes on from the last card the vault
    read, and marks its progress past them, rather than one listing reading them all."""
    left_out = await bench.store_cards_in_order(25)
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    vault_engine = make_engine(databases.vault_url, pool_size=1)
    try:
        async with vault_engine.begin() as db:
            for token in left_out:
                await db.execute(
                    text("UPDATE cards SET kek_version = 0 WHERE token = :t"), {"t": token}
                )
    finally:
        await dispose(vault_engine)
    spy = bench.spy()
    assert await bench.sweep(page_size=2, vault=spy).run() == SweepCounts(1, 0, 1, 0)
    # The first page read 20 cards (10 per card it may list), all left out, and came back
    # empty; the second went on after the last of them.
    assert spy.cursors == [None, left_out[19]]
    assert spy.listed == [orphan]
    assert not await bench.card_exists(orphan)
    again = bench.spy()
    assert await bench.sweep(page_size=2, vault=again).run() == SweepCounts()
    assert again.cursors == [orphan]


@dataclass
class PagedVault:
    """A vault whose listing answers the pages given, one per call, as a vault leaving cards
    out may (short or empty pages with more to come); deletions are recorded, not made."""

    pages: list[VaultCardPage]
    deleted: list[str] = field(default_factory=list)

    async def cards_created_before(
        self, cutoff: datetime, *, limit: int, starting_after: str | None
    ) -> VaultCardPage:
        return self.pages.pop(0)

    async def delete_card(self, account_id: str, vault_token: str) -> bool:
        self.deleted.append(vault_token)
        return True


def _listed(first: int, count: int) -> list[StoredVaultCard]:
    return [
        StoredVaultCard(f"vtok_{n:04d}", "acct_elsewhere", START + timedelta(seconds=n))
        for n in range(first, first + count)
    ]


async def test_a_core_database_holding_nothing_is_refused_after_an_empty_first_page(
    bare_bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    """The vault's first page lists no card (all left out) and says more follow: the check
    that this core database references anything at all is made at the first page that lists
    cards, before any is deleted."""
    (left_out,) = _listed(0, 1)
    vault = PagedVault(
        [
            VaultCardPage([], has_more=True, scanned_through=left_out),
            VaultCardPage(_listed(1, 3), has_more=False),
        ]
    )
    with caplog.at_level(logging.ERROR, logger="remit"):
        assert await bare_bench.sweep(vault=vault).run() == SweepCounts()
    assert vault.deleted == []
    assert "holds no payment method or token" in caplog.text


async def test_short_pages_mostly_unreferenced_stop_the_sweep_once_the_run_has_enough_cards(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    """Pages of 5 cards are each too small to judge; the run's cards so far are judged with
    each page, so a core database that references none of them stops the run at 20 cards."""
    pages = [VaultCardPage(_listed(5 * n, 5), has_more=n < 5) for n in range(6)]
    vault = PagedVault(list(pages))
    with caplog.at_level(logging.ERROR, logger="remit"):
        counts = await bench.sweep(vault=vault).run()
    assert vault.deleted == [card.vault_token for card in _listed(0, 15)]
    assert counts == SweepCounts(checked=20, referenced=0, deleted=15, failed=0)
    assert len(vault.pages) == 2
    assert "20 of 20 cards on this run" in caplog.text
