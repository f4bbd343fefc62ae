"""What the tests of refunds against the real ledger share: a payments service wired with the
production hooks (events and ledger), and a paid intent whose net is available to refund."""

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.ledger import postings as ledger
from remit.ledger.balance_repository import BalanceRepository
from remit.payments.charges import Refund
from remit.payments.grpc import payment_intent_message
from remit.payments.service import PaymentsService
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.support.fake_network import FakeNetwork

NET = 941  # 1000 captured less the default 2.9% + 30 fee


def ledger_payments(engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return PaymentsService(
        engine,
        network,
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(),
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )


def respond(refund: Refund) -> bytes:
    return f"{refund.id}:{refund.status.value}".encode()


async def paid_and_made_available(
    payments: PaymentsService, engine: AsyncEngine, account_id: str
) -> str:
    """A 1000 payment whose NET is made available three days later; returns the intent id."""
    intent = await pay(payments, account_id, "paid")
    later = datetime.now(UTC) + timedelta(days=3)
    async with engine.begin() as db:
        balances = BalanceRepository(db)
        for due in await balances.claim_due_balance_transactions(
            now=later, limit=10, account_id=account_id
        ):
            await ledger.make_available(db, due, now=later)
    return intent.id
