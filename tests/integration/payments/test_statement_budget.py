"""How many statements a confirmed card payment sends to the core database.

Throughput is bound by round trips (bench/README.md), so the count is pinned here: a change that
adds a statement to the payment path has to change this test and say why. The base count is of
a payment whose card the test hands over and whose account has Radar off; a payment with a
real payment method, on an account whose Radar runs a rule naming a value list, is pinned too,
so that a statement added to either of those paths fails a test as well.
"""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.radar.domain import ItemType, RuleAction
from remit.radar.service import RadarService
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_setup_future_usage import Core, _pay
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

# claim the key (1); attempt: Radar's rules, intent, charge, event, advance (5: the advance is
# fenced by the key's owner token, so the key is not locked first);
# network answer: store it and advance in one statement (1); outcome: lock the key, intent and
# charge in one statement, update intent and charge (3), finish (1), two events (2), capture
# state and the ledger posting (`ledger_post`: lock, check and write in one statement) (2).
# Writes are counted where they are made: most of them
# travel together in a pipeline (remit.storage.fastsql.deferring), but each is still a
# statement PostgreSQL runs.
CONFIRMED_PAYMENT_STATEMENTS = 1 + 5 + 1 + 3 + 1 + 2 + 2


async def _statements_of_a_payment(engine: AsyncEngine) -> list[str]:
    """What the second confirmed payment of an account sends (the first warms the caches)."""
    created = await AccountsService(engine).create_account(radar_enabled=False)
    payments = payments_with_core_hooks(engine)
    await pay(payments, created.account.id, "warm-up")
    with statements_sent(engine) as statements:
        intent = await pay(payments, created.account.id, "counted")
    assert intent.status.value == "succeeded"
    return statements


async def test_a_confirmed_payment_stays_within_its_statement_budget(
    core_engine: AsyncEngine,
) -> None:
    statements = await _statements_of_a_payment(core_engine)
    assert len(statements) == CONFIRMED_PAYMENT_STATEMENTS, "\n".join(
        statement.split("\n", 1)[0][:100] or statement.strip()[:100] for statement in statements
    )


async def test_the_ledger_posts_last_in_the_outcome_phase(core_engine: AsyncEngine) -> None:
    """The ledger's posting locks the account's chain head until the commit; every statement
    sent after it would make the account's other payments wait longer for it. It is one
    statement, sent with the COMMIT."""
    statements = await _statements_of_a_payment(core_engine)
    posts = [i for i, sql in enumerate(statements) if "ledger_post(" in sql]
    assert posts == [len(statements) - 1], statements[posts[0] if posts else -1 :]
    assert not any("ledger_lock_for_posting" in sql for sql in statements)


async def test_a_payment_with_a_saved_card_adds_its_read_and_its_check(
    core_engine: AsyncEngine,
) -> None:
    """A customer's saved card is read before the attempt (1) and checked again in it, under
    its row lock (1: deferred, it travels with the attempt's writes, no round trip of its own),
    so that a detach meanwhile is not missed; the intent's customer is checked to exist (1)."""
    created = await AccountsService(core_engine).create_account(radar_enabled=False)
    account_id = created.account.id
    core = Core(core_engine)
    customer = await core.customers.create(account_id, CustomerFields())
    saved = await core.methods.create(
        account_id, NewPaymentMethod(payment_method_id="pm_card_visa")
    )
    await core.methods.attach(account_id, saved.id, customer.id)
    await _pay(core, account_id, "warm-up", customer_id=customer.id, pm=saved.id,
               setup_future_usage=None)  # fmt: skip
    with statements_sent(core_engine) as statements:
        intent = await _pay(core, account_id, "counted", customer_id=customer.id, pm=saved.id,
                            setup_future_usage=None)  # fmt: skip
    assert intent.status.value == "succeeded"
    assert len(statements) == CONFIRMED_PAYMENT_STATEMENTS + 3, "\n".join(
        statement.split("\n", 1)[0][:100] or statement.strip()[:100] for statement in statements
    )
    assert sum("FOR SHARE" in statement for statement in statements) == 1


# Besides the base payment's: the payment method read before the attempt (1); Radar on: the
# card's velocity counters locked, the missing ones inserted, in one statement (1), then saved
# with this attempt counted (1), and the values of the attempt looked up in the lists its rules
# name, in one statement (1); the card spent on this intent and checked usable in the attempt
# (1: a payment method attached to no customer pays once; deferred, it travels with the
# attempt's writes); outcome: the card's latest checks saved to its counters for Radar (1).
RADAR_AND_PAYMENT_METHOD_STATEMENTS = 1 + 3 + 1 + 1


async def test_a_payment_with_a_payment_method_and_radar_rules_stays_within_its_budget(
    core_engine: AsyncEngine,
) -> None:
    """The path most payments take: a payment method made beforehand (as Stripe.js makes it),
    and Radar assessing the attempt with the account's rules, one of which names a value list
    (the list does not hold the card: the payment succeeds)."""
    account_id = (await AccountsService(core_engine).create_account()).account.id
    radar = RadarService(core_engine)
    blocked = await radar.create_value_list(
        account_id, alias="blocked_cards", name="Blocked cards", item_type=ItemType.CARD_FINGERPRINT
    )
    await radar.add_item(account_id, blocked.id, "fp_another_card")
    await radar.create_rule(account_id, RuleAction.BLOCK, ":card_fingerprint: in @blocked_cards")
    core = Core(core_engine)

    async def payment_method() -> str:
        new = NewPaymentMethod(payment_method_id="pm_card_visa")
        return (await core.methods.create(account_id, new)).id

    await _pay(core, account_id, "warm-up", customer_id=None, pm=await payment_method(),
               setup_future_usage=None)  # fmt: skip
    counted = await payment_method()
    with statements_sent(core_engine) as statements:
        intent = await _pay(core, account_id, "counted", customer_id=None, pm=counted,
                            setup_future_usage=None)  # fmt: skip
    assert intent.status.value == "succeeded"
    expected = CONFIRMED_PAYMENT_STATEMENTS + RADAR_AND_PAYMENT_METHOD_STATEMENTS
    assert len(statements) == expected, "\n".join(
        statement.split("\n", 1)[0][:100] or statement.strip()[:100] for statement in statements
    )
    # Radar did run, and read the list: not a payment it let through unassessed.
    assert sum("radar_value_list_items" in statement for statement in statements) == 1
    assert sum("radar_counters" in statement for statement in statements) == 3
