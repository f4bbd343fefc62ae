"""The rule language: what parses, what is refused when saved, and how predicates decide."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from remit.radar.domain import ActiveRule, RiskLevel, Rule, RuleAction, Score, decide
from remit.radar.rules import (
    MAX_NESTING,
    MAX_PREDICATE_LENGTH,
    ListValues,
    RuleSyntaxError,
    parse_predicate,
    parse_rule,
)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("Block if :risk_score: > 85", "block"),
        ("Request 3D Secure if :amount_in_usd: > 500", "request_three_d_secure"),
        ("allow IF :card_fingerprint: in @trusted", "allow"),
        ("Review if :risk_level: = 'elevated'", "review"),
    ],
)
def test_stripe_rules_parse_into_their_action(text: str, action: str) -> None:
    assert parse_rule(text).action == action


@pytest.mark.parametrize(
    ("predicate", "signals", "expected"),
    [
        (":risk_score: > 85", {"risk_score": 86}, True),
        (":risk_score: > 85", {"risk_score": 85}, False),
        (":amount_in_usd: >= 500.50", {"amount_in_usd": Decimal("500.50")}, True),
        (":card_country: = 'us'", {"card_country": "US"}, True),
        (":card_country: in ('US', 'CA')", {"card_country": "ca"}, True),
        (":card_country: not in ('US', 'CA')", {"card_country": "DE"}, True),
        (":card_country: != :ip_country:", {"card_country": "US", "ip_country": "RU"}, True),
        (":card_country: != :ip_country:", {"card_country": "US"}, False),
        (":card_country: not in ('US')", {}, False),
        ("not :is_off_session:", {"is_off_session": False}, True),
        (
            "(:risk_score: > 50 or :is_off_session:) and :currency: = 'usd'",
            {"risk_score": 10, "is_off_session": True, "currency": "usd"},
            True,
        ),
        (":email: = 'it\\'s@x.example'", {"email": "it's@x.example"}, True),
    ],
)
def test_predicates_decide_on_the_signals(
    predicate: str, signals: dict[str, object], expected: bool
) -> None:
    assert parse_predicate(predicate).run(signals, {}) is expected


def test_list_membership_reads_only_the_lists_it_names() -> None:
    parsed = parse_predicate(":card_fingerprint: in @trusted or :email: in @vips")
    assert parsed.lists == frozenset({"trusted", "vips"})
    lists = {"trusted": ListValues(frozenset({"fp_1"}))}
    assert parsed.run({"card_fingerprint": "FP_1"}, lists) is True
    assert parsed.run({"card_fingerprint": "fp_2"}, lists) is False
    assert parsed.run({"email": "a@b"}, {}) is False  # a vanished list is empty


RISKY = {"risky": ListValues(frozenset({"ng"}))}
NO_IP_COUNTRY = {"card_country": "US", "ip_country": None, "risk_score": 20}


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        # Both spellings of a negated condition on a missing value are false.
        (":ip_country: not in @risky", False),
        ("not :ip_country: in @risky", False),
        ("not (:ip_country: in @risky)", False),
        (":ip_country: != 'NG'", False),
        ("not :ip_country: = 'NG'", False),
        ("not :ip_country: in ('NG', 'RU')", False),
        ("not not :ip_country: = 'NG'", False),
        ("not :is_off_session:", False),
        # Unknown and false is false, unknown or true is true, whatever the negations.
        ("not :ip_country: in @risky and :card_country: = 'US'", False),
        ("not :ip_country: in @risky or :card_country: = 'US'", True),
        ("not (:ip_country: in @risky or :card_country: = 'US')", False),
        ("not (:ip_country: in @risky or :card_country: = 'NG')", False),
        ("not (:ip_country: in @risky and :card_country: = 'NG')", True),
        ("not (:ip_country: in @risky and :card_country: = 'US')", False),
        ("(not :ip_country: = 'NG' or :risk_score: > 50) or :card_country: = 'NG'", False),
    ],
)
def test_a_condition_on_a_missing_value_is_unknown_and_not_does_not_make_it_true(
    predicate: str, expected: bool
) -> None:
    assert parse_predicate(predicate).run(NO_IP_COUNTRY, RISKY) is expected


@pytest.mark.parametrize("allow", ["not :ip_country: in @risky", ":ip_country: not in @risky"])
def test_an_allow_rule_on_a_missing_value_does_not_override_a_block(allow: str) -> None:
    now = datetime.now(UTC)
    rules = [
        ActiveRule(
            Rule("rule_0", "acct_1", RuleAction.ALLOW, allow, 0, now), parse_predicate(allow)
        ),
        ActiveRule(
            Rule("rule_1", "acct_1", RuleAction.BLOCK, ":risk_score: > 10", 1, now),
            parse_predicate(":risk_score: > 10"),
        ),
    ]
    score = Score(20, RiskLevel.NORMAL, (), "test")
    decision = decide(score, NO_IP_COUNTRY, rules, RISKY)
    assert (decision.action, decision.rule_id) == (RuleAction.BLOCK, "rule_1")
    with_country = {**NO_IP_COUNTRY, "ip_country": "US"}
    assert decide(score, with_country, rules, RISKY).action is RuleAction.ALLOW


def test_a_case_sensitive_list_compares_exactly() -> None:
    parsed = parse_predicate(":email: in @exact")
    lists = {"exact": ListValues(frozenset({"A@b"}), case_sensitive=True)}
    assert parsed.run({"email": "A@b"}, lists) is True
    assert parsed.run({"email": "a@b"}, lists) is False


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (":nope: > 1", "Unknown attribute"),
        (":risk_score: > 'high'", "Cannot compare"),
        (":risk_level: > 'elevated'", "compares numbers only"),
        (":risk_score:", "needs a comparison"),
        (":risk_score: >", "ends too early"),
        ("(:risk_score: > 1", "ends too early"),
        (":risk_score: > 1 )", "after a complete condition"),
        (":is_off_session: in ('a')", "boolean cannot"),
        (":card_country: in ('US', 1)", "holds string literals"),
        ("drop table", "Unexpected word"),
        (":risk_score: > 1 ; x", "Unexpected character"),
        ("", "empty"),
    ],
)
def test_a_broken_predicate_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(RuleSyntaxError, match=reason):
        parse_predicate(text)


def test_a_rule_without_an_action_is_refused() -> None:
    with pytest.raises(RuleSyntaxError, match="Allow\\|Block"):
        parse_rule("Deny if :risk_score: > 1")


def _nested(depth: int, inner: str = ":risk_score: > 1") -> str:
    return "(" * depth + inner + ")" * depth


def test_a_predicate_nested_too_deep_is_refused_with_its_reason() -> None:
    deep = _nested(330)
    assert len(deep) < MAX_PREDICATE_LENGTH
    with pytest.raises(RuleSyntaxError, match=f"more than {MAX_NESTING} deep"):
        parse_predicate(deep)
    with pytest.raises(RuleSyntaxError, match="deep"):
        parse_predicate("not " * 200 + ":is_off_session:")
    with pytest.raises(RuleSyntaxError, match="deep"):
        parse_predicate("not (" * (MAX_NESTING // 2 + 1) + ":is_off_session:" + ")" * 17)


def test_a_predicate_nested_as_deep_as_allowed_runs() -> None:
    parsed = parse_predicate(_nested(MAX_NESTING))
    assert parsed.run({"risk_score": 2}, {}) is True
    assert parsed.run({"risk_score": 0}, {}) is False
    # Depth is counted per path: many groups side by side are not nested.
    wide = " and ".join([_nested(MAX_NESTING // 2)] * 10)
    assert parse_predicate(wide).run({"risk_score": 2}, {}) is True


def test_a_number_cannot_be_tested_against_a_value_list_but_can_against_a_set() -> None:
    for predicate in (":amount: in @ok", ":amount: not in @ok", "not :risk_score: in @ok"):
        with pytest.raises(RuleSyntaxError, match="value list"):
            parse_predicate(predicate)
    assert parse_predicate(":amount: in (100, 200)").run({"amount": 200}, {}) is True


def test_the_attributes_tested_against_each_list_are_known_when_saving() -> None:
    parsed = parse_predicate(
        ":email: in @vips or not :card_country: in @risky or :ip_country: not in @risky"
    )
    assert parsed.list_attributes == {
        "vips": frozenset({"email"}),
        "risky": frozenset({"card_country", "ip_country"}),
    }
