"""How many statements a confirmed card payment sends to the core database.

Throughput is bound by round trips (bench/README.md), so the count is pinned here: a change that
adds a statement to the payment path has to change this test and say why.
"""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.payments.events import PaymentEvents
from remit.payments.grpc import payment_intent_message
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.ports import HookChain
from remit.payments.service import PaymentsService
from remit.radar.gate import Radar
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

# claim the key (1); attempt: Radar's rules, intent, charge, event, advance (5: the advance is
# fenced by the key's owner token, so the key is not locked first);
# network answer: store it and advance in one statement (1); outcome: lock the key, intent and
# charge in one statement, update intent and charge (3), capture state, ledger lock, ledger write
# (3), two events (2), finish (1).
CONFIRMED_PAYMENT_STATEMENTS = 1 + 5 + 1 + 3 + 3 + 2 + 1


async def test_a_confirmed_payment_stays_within_its_statement_budget(
    core_engine: AsyncEngine,
) -> None:
    created = await AccountsService(core_engine).create_account(radar_enabled=False)
    payments = PaymentsService(
        core_engine,
        FakeNetwork(),
        FakeMethods(),
        present=payment_intent_message,
        hooks=HookChain([PaymentEvents(), LedgerPostings()]),
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )
    await pay(payments, created.account.id, "warm-up")
    with statements_sent(core_engine) as statements:
        intent = await pay(payments, created.account.id, "counted")
    assert intent.status.value == "succeeded"
    assert len(statements) == CONFIRMED_PAYMENT_STATEMENTS, "\n".join(
        statement.split("\n", 1)[0][:100] or statement.strip()[:100] for statement in statements
    )
