"""The worker's conversion of the core's card fingerprints to each account's own, with a real
vault over gRPC and the core's database: payment methods and tokens made before the vault's
re-seal hold the fingerprint every account shared, as do the Radar list items and velocity
counters made of it."""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.secrets import Secret
from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.fingerprint_conversion import ConversionCounts, FingerprintConversion
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.radar.domain import ItemType, RuleAction
from remit.radar.service import RadarService
from remit.storage.engine import dispose, make_engine
from remit.vault.crypto import fingerprint, platform_fingerprint
from remit.vault.keystore import FileKeyStore
from tests.support.fake_acquirer import running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
VISA = "4242424242424242"


@dataclass
class Bench:
    account_id: str
    other_account_id: str
    payment_methods: PaymentMethodsService
    radar: RadarService
    vault: RunningVault
    keys: FileKeyStore
    core_engine: AsyncEngine
    vault_engine: AsyncEngine

    def conversion(self, *, batch_size: int = 500) -> FingerprintConversion:
        return FingerprintConversion(
            GrpcCardVault(self.vault.channel, requester="worker"),
            self.core_engine,
            batch_size=batch_size,
        )

    @property
    def shared(self) -> str:
        """The card's fingerprint under the key every account shared."""
        return platform_fingerprint(self.keys.load(), Secret(VISA))

    @property
    def own(self) -> str:
        return fingerprint(self.keys.load(), self.account_id, Secret(VISA))

    async def store_card(self) -> str:
        tokenized = await self.vault.service.tokenize(
            self.account_id, Secret(VISA), 11, 2031, None, requester="api"
        )
        return tokenized.token

    async def as_before_the_upgrade(self, table: str, row_id: str) -> None:
        """The row as a core of the version before wrote it: the card's shared fingerprint, and
        no word on whose it is (its scope the column's default)."""
        async with self.core_engine.begin() as db:
            await db.execute(
                text(
                    f"UPDATE {table} SET fingerprint = :fingerprint, "  # noqa: S608 (test tables)
                    "fingerprint_scope = DEFAULT WHERE id = :id"
                ),
                {"fingerprint": self.shared, "id": row_id},
            )

    async def method_made_before_the_upgrade(self) -> str:
        method = await self.payment_methods.create(
            self.account_id, NewPaymentMethod(vault_token=await self.store_card())
        )
        await self.as_before_the_upgrade("payment_methods", method.id)
        return method.id

    async def held(self, table: str, row_id: str) -> tuple[str, int]:
        async with self.core_engine.connect() as db:
            row = (
                await db.execute(
                    text(f"SELECT fingerprint, fingerprint_scope FROM {table} WHERE id = :id"),  # noqa: S608
                    {"id": row_id},
                )
            ).one()
        return row.fingerprint, row.fingerprint_scope

    async def set_vault_scope(self, vault_token: str, scope: int) -> None:
        async with self.vault_engine.begin() as db:
            await db.execute(
                text("UPDATE cards SET fingerprint_scope = :scope WHERE token = :token"),
                {"scope": scope, "token": vault_token},
            )

    async def card_counter_keys(self, account_id: str) -> list[str]:
        async with self.core_engine.connect() as db:
            rows = await db.execute(
                text(
                    "SELECT key FROM radar_counters WHERE account_id = :account_id "
                    "AND dimension = 'card' ORDER BY key"
                ),
                {"account_id": account_id},
            )
        return [row.key for row in rows]

    async def count_card_uses(self, account_id: str, card_fingerprint: str) -> None:
        """A velocity counter of the card, as Radar keeps one after an attempt."""
        async with self.core_engine.begin() as db:
            await db.execute(
                text(
                    "INSERT INTO radar_counters (account_id, dimension, key, first_seen_at, "
                    "last_minute, last_hour, attempts_by_minute, attempts_by_hour, "
                    "declines_by_hour, declines_in_a_row) VALUES (:account_id, 'card', :key, "
                    ":now, 0, 0, '{1}', '{1}', '{0}', 0)"
                ),
                {"account_id": account_id, "key": card_fingerprint, "now": START},
            )


@pytest.fixture
async def bench(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> AsyncIterator[Bench]:
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    clock = FixedClock(START)
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    other = (await accounts.create_account()).account.id
    try:
        async with (
            running_acquirer() as (_, target),
            running_vault(vault_engine, keys, {"acquirer": target}, clock=clock) as vault,
        ):
            methods = PaymentMethodsService(core_engine, GrpcCardVault(vault.channel))
            yield Bench(
                account, other, methods, RadarService(core_engine), vault, keys,
                core_engine, vault_engine,
            )  # fmt: skip
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


async def test_payment_methods_and_tokens_holding_the_shared_fingerprint_get_the_account_s(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    token = await bench.payment_methods.create_token(bench.account_id, await bench.store_card())
    await bench.as_before_the_upgrade("tokens", token.id)
    assert await bench.held("payment_methods", method_id) == (bench.shared, 1)

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=2, converted=2)
    assert await bench.held("payment_methods", method_id) == (bench.own, 2)
    assert await bench.held("tokens", token.id) == (bench.own, 2)
    method = await bench.payment_methods.get(bench.account_id, method_id)
    assert method.card.fingerprint == bench.own


async def test_a_row_already_holding_the_account_s_fingerprint_is_only_marked_checked(
    bench: Bench,
) -> None:
    method = await bench.payment_methods.create(
        bench.account_id, NewPaymentMethod(vault_token=await bench.store_card())
    )

    counts = await bench.conversion().run()

    assert counts == ConversionCounts(checked=1, converted=0)
    assert await bench.held("payment_methods", method.id) == (bench.own, 2)


async def test_the_conversion_run_again_changes_nothing_and_reads_nothing(bench: Bench) -> None:
    method_ids = [await bench.method_made_before_the_upgrade() for _ in range(3)]
    assert (await bench.conversion(batch_size=2).run()).converted == 3

    assert await bench.conversion(batch_size=2).run() == ConversionCounts()
    for method_id in method_ids:
        assert await bench.held("payment_methods", method_id) == (bench.own, 2)


async def test_a_card_the_vault_has_not_resealed_yet_is_left_for_a_later_run(
    bench: Bench,
) -> None:
    method_id = await bench.method_made_before_the_upgrade()
    method = await bench.payment_methods.get(bench.account_id, method_id)
    await bench.set_vault_scope(method.vault_token, 1)

    assert await bench.conversion().run() == ConversionCounts(checked=1, pending=1)
    assert await bench.held("payment_methods", method_id) == (bench.shared, 1)

    await bench.set_vault_scope(method.vault_token, 2)
    assert (await bench.conversion().run()).converted == 1
    assert await bench.held("payment_methods", method_id) == (bench.own, 2)


async def test_a_fingerprint_that_is_not_the_card_s_is_left_as_it_is(bench: Bench) -> None:
    method = await bench.payment_methods.create(
        bench.account_id, NewPaymentMethod(vault_token=await bench.store_card())
    )
    async with bench.core_engine.begin() as db:
        await db.execute(
            text(
                "UPDATE payment_methods SET fingerprint = 'NotThisCardsOne', "
                "fingerprint_scope = 1 WHERE id = :id"
            ),
            {"id": method.id},
        )

    assert await bench.conversion().run() == ConversionCounts(checked=1, unknown=1)
    assert await bench.held("payment_methods", method.id) == ("NotThisCardsOne", 1)


async def test_a_card_fingerprint_list_item_follows_the_card_and_matches_it_again(
    bench: Bench,
) -> None:
    await bench.method_made_before_the_upgrade()
    blocked = await bench.radar.create_value_list(
        bench.account_id, alias="blocked", name="Blocked cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.account_id, blocked.id, bench.shared)
    await bench.radar.create_rule(
        bench.account_id, RuleAction.BLOCK, ":card_fingerprint: in @blocked"
    )
    # Another account listing the same shared fingerprint holds no card of it: its list is
    # not this account's to rewrite, and stays as it was.
    theirs = await bench.radar.create_value_list(
        bench.other_account_id, alias="blocked", name="Blocked cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.other_account_id, theirs.id, bench.shared)
    signals: dict[str, object] = {"card_fingerprint": bench.own}
    before = await bench.radar.evaluate(bench.account_id, signals)
    assert before.action is not RuleAction.BLOCK

    counts = await bench.conversion().run()

    assert counts.list_items == 1
    items, _ = await bench.radar.list_items(bench.account_id, blocked.id, limit=10)
    assert [item.value for item in items] == [bench.own]
    after = await bench.radar.evaluate(bench.account_id, signals)
    assert after.action is RuleAction.BLOCK
    their_items, _ = await bench.radar.list_items(bench.other_account_id, theirs.id, limit=10)
    assert [item.value for item in their_items] == [bench.shared]


async def test_a_list_holding_both_fingerprints_keeps_the_account_s_once(bench: Bench) -> None:
    await bench.method_made_before_the_upgrade()
    trusted = await bench.radar.create_value_list(
        bench.account_id, alias="trusted", name="Trusted cards",
        item_type=ItemType.CARD_FINGERPRINT,
    )  # fmt: skip
    await bench.radar.add_item(bench.account_id, trusted.id, bench.shared)
    await bench.radar.add_item(bench.account_id, trusted.id, bench.own)

    assert (await bench.conversion().run()).list_items == 1

    items, _ = await bench.radar.list_items(bench.account_id, trusted.id, limit=10)
    assert [item.value for item in items] == [bench.own]


async def test_the_card_s_velocity_counters_follow_it(bench: Bench) -> None:
    await bench.method_made_before_the_upgrade()
    await bench.count_card_uses(bench.account_id, bench.shared)
    await bench.count_card_uses(bench.other_account_id, bench.shared)

    await bench.conversion().run()

    assert await bench.card_counter_keys(bench.account_id) == [bench.own]
    assert await bench.card_counter_keys(bench.other_account_id) == [bench.shared]


async def test_the_conversion_logs_no_card_number_and_no_fingerprint(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.method_made_before_the_upgrade()
    with caplog.at_level(logging.DEBUG):
        counts = await bench.conversion().run()

    assert counts.converted == 1
    assert "1 given their account's fingerprint" in caplog.text
    for secret in (VISA, VISA[6:], bench.shared, bench.own):
        assert secret not in caplog.text
