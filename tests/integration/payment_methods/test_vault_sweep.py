"""The worker's sweep of vault cards that no payment method or token references, with a real
vault over gRPC and the core's database."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payment_methods.vault_sweep import SweepCounts, UnreferencedCardSweep
from remit.storage.engine import make_engine
from remit.vault.keystore import FileKeyStore
from remit_api.vault.v1 import vault_pb2
from tests.support.fake_acquirer import running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=24)


@dataclass
class Bench:
    account_id: str
    payment_methods: PaymentMethodsService
    vault: RunningVault
    clock: FixedClock
    core_engine: AsyncEngine

    def sweep(
        self, *, page_size: int = 100, shards: list[AsyncEngine] | None = None
    ) -> UnreferencedCardSweep:
        return UnreferencedCardSweep(
            GrpcCardVault(self.vault.channel, requester="worker"),
            [self.core_engine] if shards is None else shards,
            grace=GRACE,
            clock=self.clock,
            page_size=page_size,
        )

    async def store_card(self) -> str:
        """A card the facade stored and then never handed to the core."""
        tokenized = await self.vault.service.tokenize(
            self.account_id, Secret("4242424242424242"), 11, 2031, Secret("123"),
            requester="api",
        )  # fmt: skip
        return tokenized.token

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
async def bench(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Bench]:
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
        await vault_engine.dispose()


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
    # Nothing is left to delete: a second sweep only finds the referenced cards.
    assert await bench.sweep(page_size=3).run() == SweepCounts(4, 4, 0, 0)


async def test_a_page_whose_references_cannot_be_looked_up_deletes_nothing(
    bench: Bench, databases: WorkerDatabases
) -> None:
    orphan = await bench.store_card()
    bench.clock.advance(GRACE.total_seconds() + 1)
    missing = make_url(databases.core_url).set(database="no_such_database")
    unreachable = make_engine(missing.render_as_string(hide_password=False))
    try:
        with pytest.raises(Exception, match="no_such_database"):
            await bench.sweep(shards=[bench.core_engine, unreachable]).run()
    finally:
        await unreachable.dispose()
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
