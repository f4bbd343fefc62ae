"""Radar's values: rules, value lists, risk levels and the decision taken for one attempt.

All frozen and free of I/O. `decide` is the one place that turns a score and an account's rules
into an action, in Stripe's order: 3-D Secure requests first (they run before authorization),
then allow rules (which override everything after them), then block rules, then the built-in
block of the highest risk level, then review rules.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final

from remit.radar.rules import CompiledPredicate, Lists, ParsedPredicate


class RuleAction(Enum):
    ALLOW = "allow"
    BLOCK = "block"
    REVIEW = "review"
    REQUEST_THREE_D_SECURE = "request_three_d_secure"


class RiskLevel(Enum):
    NORMAL = "normal"
    ELEVATED = "elevated"
    HIGHEST = "highest"
    NOT_ASSESSED = "not_assessed"


class ItemType(Enum):
    """What a value list holds (Stripe's `item_type`), with how a value is normalised."""

    CARD_BIN = "card_bin"
    CARD_FINGERPRINT = "card_fingerprint"
    CASE_SENSITIVE_STRING = "case_sensitive_string"
    COUNTRY = "country"
    CUSTOMER_ID = "customer_id"
    EMAIL = "email"
    IP_ADDRESS = "ip_address"
    STRING = "string"


# Stripe's bands: normal below 65, elevated 65-74, highest 75 and above.
ELEVATED_FROM: Final = 65
HIGHEST_FROM: Final = 75
MAX_RISK_SCORE: Final = 99


def risk_level_of(score: int) -> RiskLevel:
    if score >= HIGHEST_FROM:
        return RiskLevel.HIGHEST
    if score >= ELEVATED_FROM:
        return RiskLevel.ELEVATED
    return RiskLevel.NORMAL


@dataclass(frozen=True)
class Rule:
    id: str
    account_id: str
    action: RuleAction
    predicate: str
    position: int
    created_at: datetime
    # 1 when made, one more at each change of its action or predicate (remit.radar.history).
    # None only for a rule as it decided a charge before versions were kept, with a text it has
    # changed since (remit.radar.decided).
    version: int | None = 1
    # Why a stored rule does not run (remit.radar.validity), as read for the rules listing;
    # None for a rule that runs, and for a rule not read for display.
    invalid_reason: str | None = None
    # Why remit disabled it, recorded when it did (core migration 0069); the listing shows it
    # as the `invalid_reason`. Cleared by a change of its predicate.
    disabled_reason: str | None = None

    @property
    def text(self) -> str:
        return f"{_ACTION_WORDS[self.action]} if {self.predicate}"


_ACTION_WORDS: Final = {
    RuleAction.ALLOW: "Allow",
    RuleAction.BLOCK: "Block",
    RuleAction.REVIEW: "Review",
    RuleAction.REQUEST_THREE_D_SECURE: "Request 3D Secure",
}


@dataclass(frozen=True)
class ActiveRule:
    """A rule ready to run: its predicate as parsed when the rule was loaded, which also names
    the value lists it needs (remit.radar.validity)."""

    rule: Rule
    parsed: ParsedPredicate

    @property
    def predicate(self) -> CompiledPredicate:
        return self.parsed.run


@dataclass(frozen=True)
class ValueList:
    id: str
    account_id: str
    alias: str
    name: str
    item_type: ItemType
    created_at: datetime
    # Who created it. Stripe names the user (their name or email); remit's callers are API
    # keys, so it is the key_ id of the key the create was asked with, as Radar's history
    # records it (`history.Actor.changed_by`): "remit" only when the caller named no key.
    created_by: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValueListItem:
    id: str
    account_id: str
    value_list_id: str
    value: str
    created_at: datetime
    # Who added it: as a list's `created_by`.
    created_by: str


@dataclass(frozen=True)
class Contribution:
    """One signal's share of a score, in score points."""

    signal: str
    points: float
    value: str


@dataclass(frozen=True)
class Score:
    risk_score: int
    risk_level: RiskLevel
    top_signals: tuple[Contribution, ...]
    model_version: str


@dataclass(frozen=True)
class Decision:
    """What Radar decided for one attempt, and why. Stored on the charge before it is acted on,
    so a resumed attempt acts on the same decision."""

    action: RuleAction
    score: Score
    rule_id: str | None = None
    rule_text: str | None = None
    rule_version: int | None = None
    # Why the attempt was blocked without a rule (`highest_risk_level`), or the rule's reason.
    reason: str | None = None


# Test-mode network hints: Stripe documents the risk of its Radar test cards (stripe-wire.md
# section 9), and every other test card as one that succeeds. The hint holds the model's score
# within its band, lifting it to the band's floor or lowering it to the band's ceiling, so a
# run of payments with one test card (or a large amount) never moves it to another level:
# the elevated card stays elevated and authorized, an ordinary card stays normal and is not
# read as card testing. Rules still see the real signals (velocity included) and decide as
# written.
HINT_BANDS: Final[Mapping[str, tuple[int, int]]] = {
    "normal": (0, ELEVATED_FROM - 1),
    "elevated": (70, HIGHEST_FROM - 1),
    "highest": (90, MAX_RISK_SCORE),
    "fraudulent": (MAX_RISK_SCORE, MAX_RISK_SCORE),
}


def decide(
    score: Score,
    signals: Mapping[str, object],
    rules: Sequence[ActiveRule],
    lists: Lists,
    *,
    always_block: bool = False,
    can_authenticate: bool = True,
) -> Decision:
    """Apply the account's rules to a scored attempt. Never raises: rules were checked when
    they were saved, and a condition on a value the attempt lacks is unknown, which no `not`
    turns true (rules.py)."""
    if always_block:
        return Decision(RuleAction.BLOCK, score, reason="highest_risk_level")
    by_action: dict[RuleAction, list[ActiveRule]] = {action: [] for action in RuleAction}
    for active in rules:
        by_action[active.rule.action].append(active)

    def first(action: RuleAction) -> ActiveRule | None:
        return next((r for r in by_action[action] if r.predicate(signals, lists)), None)

    authenticated = signals.get("is_3d_secure_authenticated") is True
    if can_authenticate and not authenticated:
        matched = first(RuleAction.REQUEST_THREE_D_SECURE)
        if matched is not None:
            return _by_rule(matched, score)
    matched = first(RuleAction.ALLOW)
    if matched is not None:
        return _by_rule(matched, score)
    matched = first(RuleAction.BLOCK)
    if matched is not None:
        return _by_rule(matched, score)
    if score.risk_level is RiskLevel.HIGHEST:
        return Decision(RuleAction.BLOCK, score, reason="highest_risk_level")
    matched = first(RuleAction.REVIEW)
    if matched is not None:
        return _by_rule(matched, score)
    return Decision(RuleAction.ALLOW, score)


def _by_rule(active: ActiveRule, score: Score) -> Decision:
    return Decision(
        active.rule.action,
        score,
        rule_id=active.rule.id,
        rule_text=active.rule.text,
        rule_version=active.rule.version,
        reason="rule",
    )


def split_rule_text(text: str) -> tuple[RuleAction, str] | None:
    """A rule's `text` (`Block if :risk_score: > 85`) as its action and predicate, or None for
    a text no rule has."""
    for action, words in _ACTION_WORDS.items():
        prefix = f"{words} if "
        if text.startswith(prefix):
            return action, text[len(prefix) :]
    return None
