"""A real vault over gRPC beside the core's database, with two accounts, for the conversion of
the core's card fingerprints to each account's own and the keys recorded before it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.clock import FixedClock
from remit.core.ids import new_id
from remit.core.secrets import Secret
from remit.payment_methods.domain import NewPaymentMethod
from remit.payment_methods.fingerprint_conversion import FingerprintConversion
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payments.charges import CardSnapshot, Charge, ChargeStatus
from remit.payments.domain import CaptureMethod, ConfirmationMethod, PaymentIntent, Status
from remit.payments.repository import ChargeRepository, PaymentIntentRepository
from remit.radar.service import RadarService
from remit.storage.engine import dispose, make_engine
from remit.vault.crypto import fingerprint, platform_fingerprint
from remit.vault.keystore import FileKeyStore
from tests.support.fake_acquirer import running_acquirer
from tests.support.postgres import WorkerDatabases
from tests.support.vault import RunningVault, empty_vault_database, running_vault

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

    async def charge_showing(self, method_id: str, card_fingerprint: str) -> str:
        """A succeeded charge of the account's payment method, its card showing
        `card_fingerprint` (as a charge made before the upgrade shows the shared one)."""
        async with self.core_engine.begin() as db:
            method = await self.payment_methods.get(self.account_id, method_id)
            intent = PaymentIntent(
                id=new_id("pi"), account_id=self.account_id, amount_minor=1000, currency="usd",
                status=Status.SUCCEEDED, capture_method=CaptureMethod.AUTOMATIC,
                confirmation_method=ConfirmationMethod.AUTOMATIC, client_secret="secret",
                created_at=START, updated_at=START, payment_method_id=method_id,
            )  # fmt: skip
            await PaymentIntentRepository(db).insert(intent)
            card = method.card
            charge = Charge(
                id=new_id("ch"), account_id=self.account_id, payment_intent_id=intent.id,
                amount_minor=1000, currency="usd", status=ChargeStatus.SUCCEEDED,
                payment_method_id=method_id,
                card=CardSnapshot(
                    card.brand, card.last4, card.exp_month, card.exp_year, card_fingerprint,
                    card.funding, card.country,
                ),
                created_at=START, updated_at=START,
            )  # fmt: skip
            await ChargeRepository(db).insert(charge)
        return charge.id

    async def charge_card(self, charge_id: str) -> CardSnapshot:
        async with self.core_engine.connect() as db:
            charge = await ChargeRepository(db).get(self.account_id, charge_id)
        assert charge is not None
        return charge.card

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


@asynccontextmanager
async def fingerprint_bench_for(
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
