"""Radar in the payment path: the `RadarGate` the payments service calls, inside its own
transactions.

`assess` runs when an attempt is created and before the network is asked: it moves the
attempt's velocity counters (a few rows read and written by primary key, locked so concurrent
attempts on one card count exactly), builds the signals, scores them and applies the account's
rules. Each rule is compiled once for each text it has, and kept with the rest of its account's
(`CompiledRules`); value lists are consulted only for the attempt's own values. Nothing here
raises for a rule: a rule was checked when saved, and a stored one that would fail those checks
now (it no longer compiles, or a list it names is gone or holds another kind of value) is
invalid and matches nothing (remit.radar.validity).
"""

import functools
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.core.ids import new_id
from remit.core.jsonview import to_json
from remit.payments.charges import Charge, ChargeStatus
from remit.payments.domain import PaymentIntent
from remit.payments.idempotency import KeyRecord
from remit.payments.ports import AttemptFacts, Challenge, PaymentEnd
from remit.payments.requests import current_request
from remit.payments.risk import NOT_ASSESSED, Authentication, RiskVerdict
from remit.radar.challenges import (
    CHALLENGE_LIFETIME,
    ChallengeRepository,
    ChallengeStatus,
    ThreeDSChallenge,
)
from remit.radar.domain import ActiveRule, Decision, ItemType, Rule, decide
from remit.radar.messages import review_message
from remit.radar.model import Weights, load_weights, score
from remit.radar.refusals import refusal_of
from remit.radar.repository import (
    AttemptRules,
    CounterRepository,
    RuleRepository,
    ValueListRepository,
)
from remit.radar.reviews import ClosedReason, Review, ReviewRepository
from remit.radar.rules import ParsedPredicate, RuleSyntaxError, parse_predicate
from remit.radar.signals import (
    IP_COUNTRY_METADATA_KEY,
    Velocity,
    build_signals,
    customer_for_email,
    ip_address_of,
    risk_hint_of_test_id,
    velocity_keys,
)
from remit.radar.validity import list_problem
from remit.radar.velocity import Dimension
from remit.webhooks.outbox import record_event

log = logging.getLogger(__name__)


def compile_stored(predicate: str) -> ParsedPredicate | None:
    """A stored rule's predicate, or None (it matches nothing) if it no longer compiles. Only
    possible for a rule saved by an older, laxer parser; whatever goes wrong compiling it, it
    must not fail the payment it is asked about."""
    try:
        return parse_predicate(predicate)
    except RuleSyntaxError as error:
        log.error("stored Radar rule no longer parses (%s): %r", error, predicate)
    except Exception as error:
        # Not a syntax error but a fault of the parser (a recursion too deep, say): logged
        # without its traceback, which could run to a thousand frames.
        log.error(
            "stored Radar rule could not be compiled (%s: %.200s): %r",
            type(error).__name__,
            error,
            predicate,
        )
    return None


# For the rules listing and the checks of list changes, which read a few rules at a time.
compiled = functools.lru_cache(maxsize=4096)(compile_stored)

# What a compiled rule held costs, counted in characters of its predicate. Measured with
# tracemalloc (CPython 3.11; the rule's id, text and compiled predicate, as `CompiledRules`
# keeps them): a rule of one condition takes about 2.2 KB whatever its length, 12 to 30
# characters (73 to 185 bytes a character); each further condition about 1.5 KB more; a rule of
# 1,000 characters of short conditions up to about 78 KB (80 bytes a character), one of long
# literals far less (4 bytes a character for one long string). So each rule is charged its
# length and RULE_OVERHEAD_CHARS more, which keeps every shape measured within
# BYTES_PER_CHARGED_CHARACTER: `:amount: > 1` (12 characters, 2.2 KB) counts as 32.
RULE_OVERHEAD_CHARS: Final = 20
BYTES_PER_CHARGED_CHARACTER: Final = 80
# How much the payment path keeps compiled, across accounts, in charged characters: at most
# about 120 MB in each core process. That is 7 accounts at the limit of 200 rules of 1,000
# characters each, or 37,500 rules of 20 characters (187 accounts of 200 such rules, 7,500 of
# five; about 83 MB); an account let go has its rules compiled again at its next payment.
COMPILED_RULES_BUDGET: Final = 120_000_000 // BYTES_PER_CHARGED_CHARACTER


class CompiledRules:
    """The compiled rules of the accounts that paid most recently.

    Each account's rules are kept together, by rule id with the text they were compiled from:
    a rule is parsed once for each text it has, and its next payment after a change compiles
    the new text. Whole accounts are let go, least recently used first, when the rules held
    are charged more than `budget` characters (`rule_charge`), so the rules of other accounts
    never push out the ones of the account paying (a rule parses in about a millisecond at the
    length limit, and an account may have 200: parsing them on every payment would hold up the
    event loop).
    Only the rules an account has now are kept for it."""

    def __init__(self, budget: int = COMPILED_RULES_BUDGET) -> None:
        self._budget = budget
        self._accounts: OrderedDict[str, dict[str, tuple[str, ParsedPredicate | None]]] = (
            OrderedDict()
        )
        self._held = 0

    def of(self, rules: Sequence[Rule]) -> list[ParsedPredicate | None]:
        """Each rule's compiled predicate (None: it does not compile), in order; `rules` are
        all the rules of their account."""
        before: dict[str, dict[str, tuple[str, ParsedPredicate | None]]] = {}
        now: dict[str, dict[str, tuple[str, ParsedPredicate | None]]] = {}
        found: list[ParsedPredicate | None] = []
        for rule in rules:
            account = rule.account_id
            if account not in now:
                before[account] = self._take(account)
                now[account] = {}
            known = before[account].get(rule.id)
            if known is None or known[0] != rule.predicate:
                known = (rule.predicate, compile_stored(rule.predicate))
            now[account][rule.id] = known
            found.append(known[1])
        for account, kept in now.items():
            self._keep(account, kept)
        return found

    def clear(self) -> None:
        self._accounts.clear()
        self._held = 0

    def _take(self, account_id: str) -> dict[str, tuple[str, ParsedPredicate | None]]:
        taken = self._accounts.pop(account_id, {})
        self._held -= _size(taken)
        return taken

    def _keep(self, account_id: str, kept: dict[str, tuple[str, ParsedPredicate | None]]) -> None:
        self._accounts[account_id] = kept
        self._held += _size(kept)
        while self._held > self._budget and len(self._accounts) > 1:
            _, dropped = self._accounts.popitem(last=False)
            self._held -= _size(dropped)


def rule_charge(text: str) -> int:
    """What a rule compiled from `text` counts against the budget, in characters: its length
    and its fixed overhead (`RULE_OVERHEAD_CHARS`)."""
    return len(text) + RULE_OVERHEAD_CHARS


def _size(rules: Mapping[str, tuple[str, ParsedPredicate | None]]) -> int:
    return sum(rule_charge(text) for text, _ in rules.values())


_COMPILED_RULES: Final = CompiledRules()


def compile_problem(predicate: str) -> str:
    """Why a stored predicate does not compile (for one `compiled` found None for)."""
    try:
        parse_predicate(predicate)
    except RuleSyntaxError as error:
        return f"Invalid rule: {error}"
    except Exception as error:
        return f"The rule cannot be compiled ({type(error).__name__})."
    return "The rule cannot be compiled."


def stored_rule_problem(predicate: str, item_types: Mapping[str, ItemType]) -> str | None:
    """Why a stored rule does not run, given the item types of the account's lists it names
    (those that exist), or None when it runs."""
    parsed = compiled(predicate)
    if parsed is None:
        return compile_problem(predicate)
    return list_problem(parsed, item_types)


def active_rules(rules: list[Rule]) -> list[ActiveRule]:
    """The rules of one account that compile, ready to run (compiled once per rule text)."""
    return [
        ActiveRule(rule, parsed)
        for rule, parsed in zip(rules, _COMPILED_RULES.of(rules), strict=True)
        if parsed is not None
    ]


def runnable(rules: list[ActiveRule], item_types: Mapping[str, ItemType]) -> list[ActiveRule]:
    """The rules the lists they name let run (remit.radar.validity); each other one is
    logged, once per process, and left out."""
    kept: list[ActiveRule] = []
    for active in rules:
        problem = list_problem(active.parsed, item_types)
        if problem is None:
            kept.append(active)
        else:
            _warn_invalid(active.rule.account_id, active.rule.id, active.rule.predicate, problem)
    return kept


@functools.lru_cache(maxsize=4096)
def _warn_invalid(account_id: str, rule_id: str, predicate: str, problem: str) -> None:
    """Logged once per process for each rule, text and reason (cached): not on every
    payment, which would bury everything else in the log."""
    log.warning(
        "Radar rule %s of account %s is invalid and does not run: %s (predicate %r)",
        rule_id,
        account_id,
        problem,
        predicate,
    )


def _verdict(decision: Decision, hint: str | None) -> RiskVerdict:
    return RiskVerdict(
        action=decision.action.value,
        risk_level=decision.score.risk_level.value,
        risk_score=decision.score.risk_score,
        rule_id=decision.rule_id,
        reason=decision.reason,
        explanation={
            "model": decision.score.model_version,
            "rule": decision.rule_text,
            # Which version of the rule that text is (remit.radar.history).
            "rule_version": decision.rule_version,
            "hint": hint,
            "top_signals": [
                {"signal": c.signal, "points": round(c.points, 2), "value": c.value}
                for c in decision.score.top_signals
            ],
        },
    )


class Radar:
    def __init__(
        self,
        *,
        challenge_base_url: str,
        weights: Weights | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._weights = weights or load_weights()
        self._clock = clock or SystemClock()
        self._base_url = challenge_base_url.rstrip("/")

    def _now(self) -> datetime:
        return self._clock.now()

    # --- scoring ------------------------------------------------------------------------

    async def assess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        read = await RuleRepository(db).for_attempt(facts.account_id, customer_for_email(facts))
        if not read.enabled:
            return NOT_ASSESSED
        keys = velocity_keys(facts)
        repo = CounterRepository(db)
        counters = await repo.lock(facts.account_id, keys, facts.at)
        counted = {d: c.with_attempt(facts.at) for d, c in counters.items()}
        await repo.save(facts.account_id, keys, counted)
        return await self.evaluate(db, facts, Velocity(counted), read)

    async def reassess(self, db: AsyncConnection, facts: AttemptFacts) -> RiskVerdict:
        read = await RuleRepository(db).for_attempt(facts.account_id, customer_for_email(facts))
        if not read.enabled:
            return NOT_ASSESSED
        counters = await CounterRepository(db).read(facts.account_id, velocity_keys(facts))
        return await self.evaluate(
            db, facts, Velocity({d: c.at(facts.at) for d, c in counters.items()}), read
        )

    async def evaluate(
        self, db: AsyncConnection, facts: AttemptFacts, velocity: Velocity, read: AttemptRules
    ) -> RiskVerdict:
        hint = risk_hint_of_test_id(facts.test_id)
        signals = build_signals(facts, velocity, read.customer_email)
        scored = score(signals, self._weights, hint)
        signals["risk_score"] = scored.risk_score
        signals["risk_level"] = scored.risk_level.value
        rules = active_rules(read.rules)
        aliases = {alias for rule in rules for alias in rule.parsed.lists}
        lists = await ValueListRepository(db).matching(
            facts.account_id, aliases, [v for v in signals.values() if isinstance(v, str)]
        )
        decision = decide(
            scored,
            signals,
            runnable(rules, lists.item_types),
            lists.values,
            always_block=hint == "fraudulent",
            can_authenticate=not facts.off_session,
        )
        return _verdict(decision, hint)

    async def attempt_settled(self, db: AsyncConnection, charge: Charge) -> None:
        """Declines in a row, declines per day and the latest check results of the card. A
        failed attempt counts only as `counts_as_decline` says; any other leaves them be."""
        verdict = RiskVerdict.from_json(charge.risk)
        fingerprint = charge.card.fingerprint
        if verdict.risk_level == NOT_ASSESSED.risk_level or not fingerprint:
            return
        result = charge.network_result or {}
        repo = CounterRepository(db)
        cvc = _text(result.get("cvc_check"))
        postal = _text(result.get("address_postal_code_check"))
        if charge.status is not ChargeStatus.FAILED:
            await repo.settle_approval(charge.account_id, fingerprint, cvc, postal)
            return
        if not counts_as_decline(charge):
            return
        keys = {Dimension.CARD: fingerprint}
        now = self._now()
        counters = await repo.lock(charge.account_id, keys, now)
        updated = {
            d: c.with_result(now, declined=True, cvc_check=cvc, postal_check=postal)
            for d, c in counters.items()
        }
        await repo.save(charge.account_id, keys, updated)

    # --- reviews -----------------------------------------------------------------------

    async def open_review(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent, verdict: RiskVerdict
    ) -> str:
        now = self._now()
        ip_country = intent.metadata.get(IP_COUNTRY_METADATA_KEY)
        review = Review(
            id=new_id("rev"),
            account_id=charge.account_id,
            charge_id=charge.id,
            payment_intent_id=intent.id,
            open=True,
            opened_reason="rule",
            created_at=now,
            risk=verdict.as_json(),
            rule_id=verdict.rule_id,
            ip_address=ip_address_of(_facts_for_ip(intent, charge, now)),
            ip_country=ip_country.upper() if ip_country else None,
        )
        await ReviewRepository(db).insert(review)
        await emit_review_event(db, review, "review.opened", now)
        return review.id

    async def review_is_open(self, db: AsyncConnection, review_id: str) -> bool:
        return await ReviewRepository(db).is_open(review_id)

    async def payment_ended(
        self,
        db: AsyncConnection,
        account_id: str,
        review_id: str,
        end: PaymentEnd,
        *,
        by: KeyRecord | None,
    ) -> None:
        """Close the review of a payment that ended without it (refunded in full, canceled,
        its authorization expired), as Stripe does: otherwise it stays in the queue, and only
        an approval could close it, recording a refunded payment as approved.

        Not when the request ending it is the review's own close refunding or canceling the
        payment (`refusal_of`): that close closes the review, with the reason it was asked
        for, in the transaction that finishes its client's key."""
        refusal = None if by is None else refusal_of(by)
        if refusal is not None and refusal[0] == review_id:
            return
        reviews = ReviewRepository(db)
        review = await reviews.get(account_id, review_id, for_update=True)
        if review is None or not review.open:
            return
        now = self._now()
        closed = review.closed(ClosedReason(end.value), now)
        await reviews.save(closed)
        await emit_review_event(db, closed, "review.closed", now)

    # --- 3-D Secure ----------------------------------------------------------------------

    async def open_challenge(
        self, db: AsyncConnection, charge: Charge, intent: PaymentIntent
    ) -> Challenge | None:
        now = self._now()
        challenge = ThreeDSChallenge(
            id=new_id("tdsc"),
            account_id=charge.account_id,
            payment_intent_id=intent.id,
            charge_id=charge.id,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            brand=charge.card.brand,
            last4=charge.card.last4,
            status=ChallengeStatus.PENDING,
            created_at=now,
            expires_at=now + CHALLENGE_LIFETIME,
            return_url=intent.return_url,
        )
        await ChallengeRepository(db).insert(challenge)
        return Challenge(challenge.id, self.challenge_url(challenge.account_id, challenge.id))

    def challenge_url(self, account_id: str, challenge_id: str) -> str:
        return f"{self._base_url}/three_d_secure/{account_id}/{challenge_id}"


def counts_as_decline(charge: Charge) -> bool:
    """Whether a failed attempt counts as a decline of its card (declines in a row and per
    day): the issuer declined it (`declined_by_network`), or its cardholder failed 3-D Secure
    (a failed challenge, or one left to expire).

    Not Radar's own blocks: counting them, a rule blocking on declines would feed itself, each
    block a further decline, and the card could never pay again. Nor an attempt refused before
    the network for another reason (a card the vault will no longer open, a number that fails
    its check digit, 3-D Secure that could not be asked of an off-session cardholder): nobody
    declined the card. A failed challenge does count, although no issuer saw the payment: the
    cardholder could not prove the card theirs, which is what testing stolen cards looks like,
    and passing a challenge (an approval) ends the streak, so it cannot shut the card out."""
    outcome = charge.outcome or {}
    if outcome.get("network_status") == "declined_by_network":
        return True
    return Authentication.from_json(charge.authentication).result == "failed"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _facts_for_ip(intent: PaymentIntent, charge: Charge, now: datetime) -> AttemptFacts:
    return AttemptFacts(
        account_id=charge.account_id,
        payment_intent_id=intent.id,
        charge_id=charge.id,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        card=charge.card,
        at=now,
        metadata=dict(intent.metadata),
        off_session=Authentication.from_json(charge.authentication).off_session,
    )


async def emit_review_event(
    db: AsyncConnection, review: Review, event_type: str, now: datetime
) -> None:
    request = current_request.get()
    await record_event(
        db,
        account_id=review.account_id,
        type=event_type,
        data_object=to_json(review_message(review)),
        now=now,
        request_id=None if request is None else request.request_id,
        idempotency_key=None if request is None else request.idempotency_key,
    )
