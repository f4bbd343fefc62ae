"""Stored rules in the payment path: one that no longer compiles matches nothing, whatever
goes wrong compiling it, and the payment goes on."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from remit.radar import gate
from remit.radar.domain import Rule, RuleAction
from remit.radar.rules import ParsedPredicate


def _rule(predicate: str) -> Rule:
    return Rule(
        id="rule_1",
        account_id="acct_1",
        action=RuleAction.BLOCK,
        predicate=predicate,
        position=0,
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
    )


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    gate.compiled.cache_clear()
    gate._COMPILED_RULES.clear()
    yield
    gate.compiled.cache_clear()
    gate._COMPILED_RULES.clear()


def test_a_stored_rule_nested_too_deep_matches_nothing() -> None:
    deep = "(" * 330 + ":risk_score: > -1" + ")" * 330
    assert gate.active_rules([_rule(deep), _rule(":risk_score: > 90")])[0].rule.predicate == (
        ":risk_score: > 90"
    )


def test_a_fault_compiling_a_stored_rule_is_logged_once_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def overflowing(_text: str) -> ParsedPredicate:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(gate, "parse_predicate", overflowing)
    with caplog.at_level(logging.ERROR, logger=gate.__name__):
        assert gate.active_rules([_rule(":risk_score: > 1")]) == []
    (record,) = caplog.records
    assert record.exc_info is None
    assert "RecursionError" in record.getMessage()
    assert ":risk_score: > 1" in record.getMessage()


def test_a_stored_rule_testing_a_number_against_a_list_matches_nothing() -> None:
    """Saved before numbers were refused a value list: `not in` matched every payment."""
    assert gate.active_rules([_rule(":amount: not in @ok")]) == []
