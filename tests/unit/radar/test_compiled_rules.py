"""The payment path compiles each rule once for each text it has, whatever the number of
accounts and rules on the platform, and lets go of whole accounts to stay within its budget,
each rule charged for its fixed overhead as well as its text."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from remit.radar import gate
from remit.radar.domain import Rule, RuleAction
from remit.radar.rules import ParsedPredicate, parse_predicate

ACCOUNTS = 21
RULES = 200  # the most an account may have


def _rules(
    account: int, count: int = RULES, *, predicate: str = ":amount_in_usd: > {n}"
) -> list[Rule]:
    return [
        Rule(
            id=f"rule_{account}_{n}",
            account_id=f"acct_{account}",
            action=RuleAction.BLOCK,
            predicate=predicate.format(n=account * 1000 + n),
            position=n,
            created_at=datetime(2026, 3, 1, tzinfo=UTC),
        )
        for n in range(count)
    ]


def _charged(rules: list[Rule]) -> int:
    return sum(gate.rule_charge(rule.predicate) for rule in rules)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The texts the payment path parses, in order."""
    texts: list[str] = []

    def counting(text: str) -> ParsedPredicate:
        texts.append(text)
        return parse_predicate(text)

    monkeypatch.setattr(gate, "parse_predicate", counting)
    gate._COMPILED_RULES.clear()
    yield texts
    gate._COMPILED_RULES.clear()


def test_each_rule_is_parsed_once_however_many_rules_other_accounts_have(
    parsed: list[str],
) -> None:
    """More accounts times rules than a cache shared by predicate text held (4,096): paying in
    turn from each account parses every rule once, not on every payment."""
    accounts = [_rules(account) for account in range(ACCOUNTS)]
    assert ACCOUNTS * RULES > 4096
    for _ in range(3):
        for rules in accounts:
            active = gate.active_rules(rules)
            assert [a.rule.id for a in active] == [rule.id for rule in rules]
    assert len(parsed) == ACCOUNTS * RULES
    assert len(set(parsed)) == ACCOUNTS * RULES


def test_a_changed_rule_runs_as_changed_on_the_next_payment(parsed: list[str]) -> None:
    rules = _rules(0, 3)
    gate.active_rules(rules)
    parsed.clear()
    changed = [rules[0], replace(rules[1], predicate=":amount_in_usd: > 5", version=2), rules[2]]
    active = gate.active_rules(changed)
    assert parsed == [":amount_in_usd: > 5"]
    assert active[1].rule.predicate == ":amount_in_usd: > 5"
    assert active[1].predicate({"amount_in_usd": 6}, {}) is True
    # A change of action alone needs no parse, and runs with the new action.
    reviewed = [replace(rule, action=RuleAction.REVIEW) for rule in changed]
    assert {a.rule.action for a in gate.active_rules(reviewed)} == {RuleAction.REVIEW}
    assert parsed == [":amount_in_usd: > 5"]
    # A deleted rule no longer runs; put back, it is compiled again.
    assert [a.rule.id for a in gate.active_rules(changed[:2])] == [r.id for r in changed[:2]]
    assert len(gate.active_rules(changed)) == 3
    assert parsed == [":amount_in_usd: > 5", rules[2].predicate]


def test_the_least_recently_paying_accounts_are_let_go_beyond_the_budget(
    parsed: list[str],
) -> None:
    first, second, third = (_rules(account, 10) for account in (1, 2, 3))
    one_account = _charged(first)  # the same for each of them
    cache = gate.CompiledRules(budget=2 * one_account)
    for rules in (first, second, first, third):
        cache.of(rules)
    assert len(parsed) == 30  # `second`, the least recent, made room for `third`
    cache.of(first)
    cache.of(third)
    assert len(parsed) == 30
    cache.of(second)
    assert len(parsed) == 40
    # An account whose rules alone come to more than the budget still keeps them.
    alone = gate.CompiledRules(budget=1)
    alone.of(first)
    alone.of(first)
    assert len(parsed) == 50


def test_many_short_rules_are_charged_their_overhead_and_let_go_sooner(
    parsed: list[str],
) -> None:
    """A short rule takes about 2 KB, as much as a long one of one condition: counted by its text
    alone, a budget would hold accounts of short rules by the thousand more than it has room
    for. Here, one with room for two accounts' texts has room for one account's rules."""
    first, second, third = (
        _rules(account, 10, predicate=":amount: > {n}") for account in (1, 2, 3)
    )
    text_only = sum(len(rule.predicate) for rule in first)
    assert _charged(first) > 2 * text_only
    cache = gate.CompiledRules(budget=2 * text_only)
    for rules in (first, second, third):
        cache.of(rules)
    parsed.clear()
    cache.of(third)  # the one the budget has room for
    assert parsed == []
    cache.of(second)  # let go, though its text and the third's come to no more than the budget
    assert len(parsed) == 10
