"""Intents keep how their payment methods are chosen (core migration 0020), and the migration
downgrades cleanly."""

import pytest
from alembic import command
from sqlalchemy import text

from remit.accounts.service import AccountsService
from remit.payments.domain import NewPaymentIntent
from remit.payments.service import Done
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import call, respond
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_COLUMNS = {
    "automatic_payment_methods",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
}


async def test_an_intent_keeps_its_payment_method_choice_and_the_migration_downgrades(
    pg_cluster: EmbeddedCluster,
) -> None:
    with scratch_database(pg_cluster, "method_choice") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account = (await AccountsService(engine).create_account(radar_enabled=False)).account.id
            service = payments_with_core_hooks(engine)
            new = NewPaymentIntent(
                amount_minor=1_000,
                currency="usd",
                automatic_payment_methods={"enabled": True, "allow_redirects": "never"},
                allowed_payment_method_types=("card", "link"),
                excluded_payment_method_types=("ideal",),
            )
            created = await service.create_payment_intent(call(account, "choice"), new, respond)
            assert isinstance(created, Done)
            stored = await service.get_payment_intent(account, created.value.id)
            assert stored.automatic_payment_methods == {"enabled": True, "allow_redirects": "never"}
            assert stored.allowed_payment_method_types == ("card", "link")
            assert stored.excluded_payment_method_types == ("ideal",)
        finally:
            await dispose(engine)

        command.downgrade(alembic_config("core", url), "0019_webhook_retry_step")
        assert _COLUMNS.isdisjoint(await _intent_columns(url))
        upgrade("core", url)
        assert _COLUMNS.issubset(await _intent_columns(url))


async def _intent_columns(url: str) -> set[str]:
    engine = make_engine(url, pool_size=1)
    try:
        async with engine.connect() as db:
            rows = await db.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'payment_intents'"
                )
            )
            return {row.column_name for row in rows}
    finally:
        await dispose(engine)
