"""Radar: what scoring and rules cost per attempt, and payment throughput with Radar on vs off.

- decision (CPU): build the signals of an attempt, score them with the committed model and run
  an account's ten rules (one of them on a value list), as `Radar.evaluate` does after its
  reads; 20,000 attempts with varied signals, timed one by one.
- assess (CPU + database): the whole pre-network step inside a real transaction on an embedded
  PostgreSQL: lock and advance the card, customer and IP counters, read the rules, look the
  attempt's values up in the value lists, score and decide.
- throughput: PaymentsService create-and-confirm (idempotency key, attempt, Radar, network,
  apply, events) against the same PostgreSQL with an in-process network that answers at once,
  16 concurrent callers, for an account with Radar on (ten rules) and one with Radar off. The
  vault and acquirer are left out on purpose: they cost the same either way and would hide the
  difference.
"""

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.result import Figure, percentile
from bench.scratch import scratch_database
from remit.accounts.service import AccountsService
from remit.accounts.tables import accounts
from remit.core.errors import RemitError
from remit.core.ids import random_token
from remit.payments.charges import CardSnapshot
from remit.payments.domain import NewPaymentIntent, PaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import AuthorizationOutcome, OperationOutcome
from remit.payments.ports import AttemptFacts, ChargeableCard
from remit.payments.service import ConfirmParams, KeyedCall, PaymentsService
from remit.radar.domain import ItemType, RuleAction, decide
from remit.radar.gate import Radar, active_rules
from remit.radar.model import load_weights, score
from remit.radar.rules import ListValues
from remit.radar.service import RadarService
from remit.radar.signals import Velocity, build_signals
from remit.radar.velocity import Counter, Dimension
from remit.storage.engine import dispose, make_engine

NAME = "radar"
DECISIONS = 20_000
ASSESSMENTS = 500
PAYMENTS = 400
CONCURRENCY = 16
RULES: Final = [
    (RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 5000"),
    (RuleAction.ALLOW, ":card_fingerprint: in @trusted"),
    (RuleAction.BLOCK, ":risk_score: > 85"),
    (RuleAction.BLOCK, ":card_country: != :ip_country: and :amount_in_usd: > 2000"),
    (RuleAction.BLOCK, ":total_charges_per_card_number_hourly: > 50"),
    (RuleAction.BLOCK, ":declined_charges_in_a_row_per_card_number: >= 5"),
    (RuleAction.BLOCK, ":ip_country: in ('KP', 'IR')"),
    (RuleAction.REVIEW, ":risk_level: = 'elevated' and not :is_3d_secure_authenticated:"),
    (RuleAction.REVIEW, ":card_funding: = 'prepaid' and :amount_in_usd: > 1000"),
    (RuleAction.REVIEW, ":total_charges_per_ip_address_hourly: > 20"),
]
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _facts(rng: random.Random, account_id: str = "acct_bench") -> AttemptFacts:
    return AttemptFacts(
        account_id=account_id,
        payment_intent_id="pi_bench",
        charge_id="ch_bench",
        amount_minor=rng.randint(100, 500_000),
        currency=rng.choice(["usd", "eur", "gbp"]),
        card=CardSnapshot(
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2034,
            fingerprint=f"fp_{rng.randint(1, 200)}",
            funding=rng.choice(["credit", "debit", "prepaid"]),
            country="US",
        ),
        at=NOW,
        customer_id=f"cus_{rng.randint(1, 100)}",
        metadata={"ip_address": f"203.0.113.{rng.randint(1, 250)}", "ip_country": "GB"},
    )


def _decision_latency() -> list[Figure]:
    from remit.radar.domain import Rule

    weights = load_weights()
    rules = active_rules(
        [Rule(f"rule_{i}", "acct_bench", a, p, i, NOW) for i, (a, p) in enumerate(RULES)]
    )
    lists = {"trusted": ListValues(frozenset({"fp_7"}))}
    rng = random.Random(1)
    samples: list[float] = []
    for _ in range(DECISIONS):
        facts = _facts(rng)
        counter = Counter.empty(NOW)
        for _ in range(rng.randint(1, 4)):
            counter = counter.with_attempt(NOW)
        started = time.perf_counter()
        signals = build_signals(facts, Velocity({Dimension.CARD: counter}))
        scored = score(signals, weights)
        signals["risk_score"], signals["risk_level"] = scored.risk_score, scored.risk_level.value
        decide(scored, signals, rules, lists)
        samples.append((time.perf_counter() - started) * 1e6)
    return [
        Figure(NAME, "signals + score + 10 rules p50 (CPU)", percentile(samples, 0.5), "µs"),
        Figure(NAME, "signals + score + 10 rules p99 (CPU)", percentile(samples, 0.99), "µs"),
    ]


async def _account(engine: AsyncEngine, radar_on: bool) -> str:
    account_id = (await AccountsService(engine).create_account()).account.id
    service = RadarService(engine)
    trusted = await service.create_value_list(
        account_id, alias="trusted", name="Trusted", item_type=ItemType.CARD_FINGERPRINT
    )
    await service.add_item(account_id, trusted.id, "fp_7")
    for action, predicate in RULES:
        await service.create_rule(account_id, action, predicate)
    if not radar_on:
        async with engine.begin() as db:
            await db.execute(
                update(accounts).where(accounts.c.id == account_id).values(radar_enabled=False)
            )
    return account_id


async def _assess_latency(engine: AsyncEngine) -> list[Figure]:
    account_id = await _account(engine, radar_on=True)
    gate = Radar(challenge_base_url="http://127.0.0.1")
    rng = random.Random(2)
    samples: list[float] = []
    async with engine.begin() as db:
        await gate.assess(db, _facts(rng, account_id))  # warm-up: connection, rule cache
    for _ in range(ASSESSMENTS):
        facts = _facts(rng, account_id)
        async with engine.begin() as db:
            started = time.perf_counter()
            await gate.assess(db, facts)
            samples.append((time.perf_counter() - started) * 1e6)
    return [
        Figure(NAME, "assess in a transaction p50 (with DB)", percentile(samples, 0.5), "µs"),
        Figure(NAME, "assess in a transaction p99 (with DB)", percentile(samples, 0.99), "µs"),
    ]


class InstantNetwork:
    """Approves everything at once, at most once per reference."""

    def __init__(self) -> None:
        self.answers: dict[str, AuthorizationOutcome] = {}

    async def authorize(
        self, *, reference: str, capture: bool, **_: object
    ) -> AuthorizationOutcome:
        return self.answers.setdefault(
            reference,
            AuthorizationOutcome(
                True, f"auth_{random_token(8)}", capture, "approved_by_network",
                None, None, None, "pass", None, None, None,
            ),
        )  # fmt: skip

    async def lookup_authorization(
        self, reference: str, expected: ExpectedOperation
    ) -> AuthorizationOutcome | None:
        return self.answers.get(reference)

    async def _op(self, **_: object) -> OperationOutcome:
        return OperationOutcome(True, f"op_{random_token(8)}", 0, None, None)

    capture = void = refund = _op

    async def lookup_operation(
        self, reference: str, expected: ExpectedOperation
    ) -> OperationOutcome | None:
        return None


class BenchMethods:
    def card_refused(self, account_id: str, vault_token: str) -> None:
        raise AssertionError("the bench's network never refuses a card")

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return "vtok_bench"

    async def attempt_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return await self.chargeable_card(account_id, payment_method_id)

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        return ChargeableCard(
            payment_method_id=payment_method_id,
            vault_token="vtok_bench",  # noqa: S106 (an id, not a secret)
            card=CardSnapshot(
                brand="visa",
                last4="4242",
                exp_month=12,
                exp_year=2034,
                fingerprint=f"fp_{payment_method_id}",
                funding="credit",
                country="US",
            ),
        )


def _respond(intent: PaymentIntent) -> bytes:
    return intent.id.encode()


async def _throughput(engine: AsyncEngine, radar_on: bool) -> float:
    account_id = await _account(engine, radar_on)
    payments = PaymentsService(
        engine,
        InstantNetwork(),
        BenchMethods(),
        present=payment_intent_message,
        radar=Radar(challenge_base_url="http://127.0.0.1"),
    )
    queue = list(range(PAYMENTS))
    rng = random.Random(3)

    async def caller() -> None:
        while queue:
            n = queue.pop()
            # A block is an outcome like any other.
            with contextlib.suppress(RemitError):
                await payments.create_payment_intent(
                    KeyedCall(account_id, f"k{n}", "CreatePaymentIntent", str(n).encode()),
                    NewPaymentIntent(amount_minor=rng.randint(100, 50_000), currency="usd"),
                    _respond,
                    confirm=ConfirmParams(payment_method_id=f"pm_{n % 300}"),
                )

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return PAYMENTS / (time.perf_counter() - started)


async def _database_figures(url: str) -> list[Figure]:
    engine = make_engine(url, pool_size=CONCURRENCY + 4)
    try:
        figures = await _assess_latency(engine)
        await _throughput(engine, radar_on=True)  # warm-up: pools, caches, the JIT of psycopg
        off = await _throughput(engine, radar_on=False)
        on = await _throughput(engine, radar_on=True)
        return [
            *figures,
            Figure(NAME, "payments/s, Radar off (16 callers, instant network)", off, "/s"),
            Figure(NAME, "payments/s, Radar on, 10 rules", on, "/s"),
            Figure(NAME, "throughput with Radar on / off", 100 * on / off, "%"),
        ]
    finally:
        await dispose(engine)


def run() -> list[Figure]:
    figures = _decision_latency()
    with scratch_database("bench_radar") as url:
        figures += asyncio.run(_database_figures(url))
    return figures
