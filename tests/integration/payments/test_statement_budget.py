"""How many statements a confirmed card payment sends to the core database.

Throughput is bound by round trips (bench/README.md), so the count is pinned here: a change that
adds a statement to the payment path has to change this test and say why. The base count is of
a payment whose card the test hands over and whose account has Radar off; a payment with a
real payment method, on an account whose Radar runs a rule naming a value list, is pinned too,
so that a statement added to either of those paths fails a test as well. So is the outcome
phase of a separate capture and of a cancel, with where the ledger takes the account's lock.
"""

from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.customers.domain import CustomerFields
from remit.payment_methods.domain import NewPaymentMethod
from remit.payments.domain import CaptureMethod
from remit.payments.network import OperationOutcome
from remit.payments.service import Done, PaymentsService
from remit.radar.domain import ItemType, RuleAction
from remit.radar.service import RadarService
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.integration.payments.test_setup_future_usage import Core, _pay
from tests.support.fake_network import FakeNetwork
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
    sent after it would make the account's other payments wait longer for it. For a payment
    captured at once it is one statement, sent with the COMMIT (a separate capture and a
    cancel hold it across several statements: see below)."""
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


@dataclass
class _NetworkMarkingItsAnswers(FakeNetwork):
    """The in-process network, noting how many of the statements being counted had been sent
    when it answered a capture or a void: what follows is the request's outcome phase."""

    counted: list[str] = field(default_factory=list)
    answered_after: list[int] = field(default_factory=list)

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        outcome = await super().capture(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )
        self.answered_after.append(len(self.counted))
        return outcome

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        outcome = await super().void(authorization_id=authorization_id, reference=reference)
        self.answered_after.append(len(self.counted))
        return outcome


async def _end(payments: PaymentsService, endpoint: str, account_id: str, key: str) -> None:
    """Capture or cancel (`endpoint`) a new authorized payment of the account."""
    held = await pay(payments, account_id, key, capture=CaptureMethod.MANUAL)
    request = call(account_id, f"{key}-end", endpoint)
    if endpoint == "CapturePaymentIntent":
        ended = await payments.capture_payment_intent(request, held.id, None, respond)
    else:
        ended = await payments.cancel_payment_intent(request, held.id, None, respond)
    assert isinstance(ended, Done)


async def _outcome_phase_of(engine: AsyncEngine, endpoint: str) -> list[str]:
    """What the second capture or cancel (`endpoint`) of an account's authorized payment
    sends once the network has answered (the first warms the caches)."""
    account_id = (await AccountsService(engine).create_account(radar_enabled=False)).account.id
    network = _NetworkMarkingItsAnswers()
    payments = payments_with_core_hooks(engine, network)
    await _end(payments, endpoint, account_id, "warm-up")
    with statements_sent(engine) as statements:
        network.counted, network.answered_after = statements, []
        await _end(payments, endpoint, account_id, "counted")
    # The payment's authorization is neither a capture nor a void: the one answer noted is the
    # capture's or the cancel's.
    (answered_after,) = network.answered_after
    return statements[answered_after:]


def _held_under_the_ledgers_lock(outcome: list[str]) -> list[str]:
    """The statements the outcome sends after the ledger first takes the account's chain lock
    (held to the commit), having checked that they are all the ledger's own: the key, the
    intent, the charge and the events are written before it."""
    locks = [i for i, sql in enumerate(outcome) if "ledger_lock_for_posting(" in sql]
    assert locks, outcome
    before, held = outcome[: locks[0]], outcome[locks[0] + 1 :]
    assert all("ledger_" in sql for sql in held), held
    assert any("INSERT INTO events" in sql for sql in before), before
    assert any("UPDATE idempotency_keys" in sql for sql in before), before
    return held


def _listed(statements: list[str]) -> str:
    return "\n".join(" ".join(statement.split())[:100] for statement in statements)


# A separate capture's outcome phase, after the network's answer: the key locked again (1),
# the intent and the charge read for update (2), the charge and the intent updated (2), the
# key finished (1), two events (2: charge.captured, payment_intent.succeeded); then the ledger:
# the capture's state, unlocked (1: the pricing, whether the charge was reserved, a balance
# transaction written already), the account's chain lock (1, answered), and under it the
# reservation (2: the transaction, its postings), `post_pending`'s own lock and read of it
# again (3), its ledger accounts locked (1), the capture's transaction (1) and the reservation
# marked posted (1), and the fee's posting with the charge's balance transaction (1,
# `ledger_post`).
SEPARATE_CAPTURE_OUTCOME_STATEMENTS = 1 + 2 + 2 + 1 + 2 + 1 + 1 + 2 + 3 + 1 + 1 + 1 + 1
SEPARATE_CAPTURE_UNDER_THE_LOCK = 2 + 3 + 1 + 1 + 1 + 1


async def test_a_separate_capture_takes_the_ledgers_lock_last_in_its_outcome_phase(
    core_engine: AsyncEngine,
) -> None:
    """A capture of an authorized payment posts the charge's reservation or, when the
    reservation lapsed meanwhile (its time passed, or the expiry job voided it), books the
    capture on its own and releases it. It decides which on the reservation read under the
    account's chain lock, under which the expiry job and a cancel void it: read before the
    lock, it could be voided in between, and posting it would fail a capture the network has
    made. So the lock is taken before that read and held across the ledger's further round
    trips to the commit, unlike the one deferred statement of a payment captured at once; but
    only once everything else of the outcome is written, so that it is held for the ledger's
    work alone."""
    outcome = await _outcome_phase_of(core_engine, "CapturePaymentIntent")
    assert len(outcome) == SEPARATE_CAPTURE_OUTCOME_STATEMENTS, _listed(outcome)
    held = _held_under_the_ledgers_lock(outcome)
    assert len(held) == SEPARATE_CAPTURE_UNDER_THE_LOCK, _listed(held)
    assert "ledger_post(" in held[-1]


# A cancel's outcome phase, after the network's void: the key locked again (1), the intent read
# for update and updated (2), the charge read and marked released (2), the key finished (1),
# one event (1: payment_intent.canceled); then the ledger: the account's chain lock (1,
# answered), and under it the reservation (2: the transaction, its postings; when the expiry
# job voided it first, its void is the answer), `void_pending`'s own lock and read of it again
# (3), its ledger accounts locked (1), the void's transaction (1) and the reservation marked
# voided (1).
CANCEL_OUTCOME_STATEMENTS = 1 + 2 + 2 + 1 + 1 + 1 + 2 + 3 + 1 + 1 + 1
CANCEL_UNDER_THE_LOCK = 2 + 3 + 1 + 1 + 1


async def test_a_cancel_takes_the_ledgers_lock_last_in_its_outcome_phase(
    core_engine: AsyncEngine,
) -> None:
    """A cancel of an authorized payment voids the reservation, or answers with the expiry
    job's void of it: decided under the account's chain lock, as a separate capture decides."""
    outcome = await _outcome_phase_of(core_engine, "CancelPaymentIntent")
    assert len(outcome) == CANCEL_OUTCOME_STATEMENTS, _listed(outcome)
    held = _held_under_the_ledgers_lock(outcome)
    assert len(held) == CANCEL_UNDER_THE_LOCK, _listed(held)
