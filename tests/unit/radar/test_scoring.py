"""The model, its fit, and the order in which rules decide."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from remit.radar.domain import (
    ActiveRule,
    RiskLevel,
    Rule,
    RuleAction,
    decide,
    risk_level_of,
)
from remit.radar.model import FEATURES, WEIGHTS_PATH, load_weights, score
from remit.radar.rules import parse_predicate
from remit.radar.signals import risk_hint_of_test_id
from remit.radar.training import fit, generate, weights_document

WEIGHTS = load_weights()
QUIET = {
    "amount_in_usd": Decimal("20"),
    "total_charges_per_card_number_hourly": 1,
    "total_charges_per_card_number_daily": 1,
    "card_country": "US",
}


def rule(action: RuleAction, predicate: str, position: int) -> ActiveRule:
    made = Rule(f"rule_{position}", "acct_1", action, predicate, position, datetime.now(UTC))
    return ActiveRule(made, parse_predicate(predicate))


def test_the_committed_weights_cover_every_feature_and_score_a_quiet_payment_low() -> None:
    assert set(WEIGHTS.weights) == set(FEATURES)
    scored = score(QUIET, WEIGHTS)
    assert scored.risk_level is RiskLevel.NORMAL
    assert scored.model_version == "radar-logistic-2"


def test_a_burst_of_attempts_raises_the_score_and_is_named_as_the_top_signal() -> None:
    burst = {
        **QUIET,
        "total_charges_per_card_number_hourly": 6,
        "total_charges_per_card_number_daily": 6,
    }
    scored = score(burst, WEIGHTS)
    assert scored.risk_score > score(QUIET, WEIGHTS).risk_score + 40
    assert scored.top_signals[0].signal == "card_attempts_hourly"
    assert scored.top_signals[0].value == "5"


KNOWN_CARD = {**QUIET, "amount_in_usd": Decimal("50"), "seconds_since_first_seen_card": 86_400 * 30}


def test_a_regular_customer_paying_several_times_a_day_stays_normal() -> None:
    """Five $50 payments in a day, spread over the day, from a card the merchant has seen for
    a month: a regular, not card testing (the first model blocked this at 79)."""
    regular = {**KNOWN_CARD, "total_charges_per_card_number_daily": 5}
    assert score(regular, WEIGHTS).risk_level is RiskLevel.NORMAL


def test_the_classic_stolen_card_pattern_scores_highest() -> None:
    """A new prepaid card, a buyer in another country, a failed CVC, $300 (the first model
    scored this 44, normal)."""
    stolen = {
        **KNOWN_CARD,
        "amount_in_usd": Decimal("300"),
        "seconds_since_first_seen_card": 0,
        "card_funding": "prepaid",
        "ip_country": "GB",
        "cvc_check": "fail",
    }
    assert score(stolen, WEIGHTS).risk_level is RiskLevel.HIGHEST


def test_the_committed_weights_are_the_generators_fit() -> None:
    """weights.json is what `python -m remit.radar.training` writes: no hand-edited weights."""
    trained = json.loads(WEIGHTS_PATH.read_text())["trained_on"]
    fitted = weights_document(trained["samples"], trained["seed"], WEIGHTS.version)
    assert fitted["weights"] == dict(WEIGHTS.weights)
    assert fitted["bias"] == WEIGHTS.bias


def test_a_test_card_hint_lifts_the_score_into_its_band_and_says_so() -> None:
    elevated = score(QUIET, WEIGHTS, "elevated")
    assert (elevated.risk_score, elevated.risk_level) == (70, RiskLevel.ELEVATED)
    assert elevated.top_signals[0].signal == "network_risk_hint"
    assert score(QUIET, WEIGHTS, "highest").risk_level is RiskLevel.HIGHEST


def test_the_elevated_test_card_stays_elevated_however_risky_the_payment_looks() -> None:
    """Stripe documents pm_card_riskLevelElevated as a charge with risk level elevated: a burst
    of payments, a large amount or a foreign IP never lifts it into the highest band, where
    the built-in block would refuse it."""
    risky = {
        **QUIET,
        "amount_in_usd": Decimal("5000"),
        "ip_country": "FR",
        "total_charges_per_card_number_hourly": 12,
        "total_charges_per_card_number_daily": 12,
    }
    assert score(risky, WEIGHTS).risk_level is RiskLevel.HIGHEST
    held = score(risky, WEIGHTS, "elevated")
    assert (held.risk_score, held.risk_level) == (74, RiskLevel.ELEVATED)
    assert "network_risk_hint" in {signal.signal for signal in held.top_signals}
    # The highest card stays within its band too, however quiet or risky the payment.
    assert score(risky, WEIGHTS, "highest").risk_level is RiskLevel.HIGHEST
    assert score(QUIET, WEIGHTS, "highest").risk_score == 90
    assert score(QUIET, WEIGHTS, "fraudulent").risk_score == 99


def test_an_ordinary_test_card_keeps_the_score_within_the_normal_band_and_says_so() -> None:
    """A burst of payments with one card scores highest; with an ordinary test card's hint it
    stays normal (lowered to the top of the band), and the explanation names the hint."""
    burst = {
        **QUIET,
        "total_charges_per_card_number_hourly": 6,
        "total_charges_per_card_number_daily": 6,
    }
    assert score(burst, WEIGHTS).risk_level is RiskLevel.HIGHEST
    capped = score(burst, WEIGHTS, "normal")
    assert (capped.risk_score, capped.risk_level) == (64, RiskLevel.NORMAL)
    assert "network_risk_hint" in {signal.signal for signal in capped.top_signals}
    quiet = score(QUIET, WEIGHTS, "normal")
    assert quiet == score(QUIET, WEIGHTS)  # a score already normal is left alone


def test_test_ids_hint_their_documented_risk() -> None:
    assert [
        risk_hint_of_test_id(test_id)
        for test_id in (
            "pm_card_chargeDeclinedFraudulent",
            "pm_card_riskLevelHighest",
            "pm_card_riskLevelElevated",
            "pm_card_visa",
            "tok_mastercard",
            None,
        )
    ] == ["fraudulent", "highest", "elevated", "normal", "normal", None]


def test_risk_levels_follow_stripes_bands() -> None:
    assert [risk_level_of(s) for s in (0, 64, 65, 74, 75, 99)] == [
        RiskLevel.NORMAL,
        RiskLevel.NORMAL,
        RiskLevel.ELEVATED,
        RiskLevel.ELEVATED,
        RiskLevel.HIGHEST,
        RiskLevel.HIGHEST,
    ]


def test_the_fit_on_generated_data_learns_what_fraud_looks_like() -> None:
    bias, weights = fit(generate(1500, seed=7))
    assert bias < 0
    for feature in ("card_attempts_hourly", "card_declines_daily", "card_new_to_account"):
        assert weights[feature] > 0.3, feature
    # Regulars repeat through the day: the day's count alone weighs less than an hour's burst.
    assert weights["card_attempts_daily"] < weights["card_attempts_hourly"]
    assert weights["three_d_secure_authenticated"] < 0.5
    assert generate(3, seed=7) == generate(3, seed=7)


def test_3ds_rules_come_first_then_allow_overrides_block_and_review() -> None:
    rules = [
        rule(RuleAction.REVIEW, ":amount_in_usd: > 1", 0),
        rule(RuleAction.BLOCK, ":amount_in_usd: > 1", 1),
        rule(RuleAction.ALLOW, ":card_country: = 'US'", 2),
        rule(RuleAction.REQUEST_THREE_D_SECURE, ":amount_in_usd: > 10", 3),
    ]
    scored = score(QUIET, WEIGHTS)
    assert decide(scored, QUIET, rules, {}).action is RuleAction.REQUEST_THREE_D_SECURE
    authenticated = {**QUIET, "is_3d_secure_authenticated": True}
    assert decide(scored, authenticated, rules, {}).rule_id == "rule_2"
    assert decide(scored, QUIET, rules, {}, can_authenticate=False).action is RuleAction.ALLOW
    without_allow = rules[:2]
    assert decide(scored, QUIET, without_allow, {}).action is RuleAction.BLOCK


def test_the_highest_risk_blocks_without_a_rule_and_the_fraud_card_even_past_allow() -> None:
    highest = score(QUIET, WEIGHTS, "highest")
    blocked = decide(highest, QUIET, [], {})
    assert (blocked.action, blocked.reason, blocked.rule_id) == (
        RuleAction.BLOCK,
        "highest_risk_level",
        None,
    )
    allow = [rule(RuleAction.ALLOW, ":card_country: = 'US'", 0)]
    assert decide(highest, QUIET, allow, {}).action is RuleAction.ALLOW
    assert decide(highest, QUIET, allow, {}, always_block=True).action is RuleAction.BLOCK


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ('{"version": "x", "bias": NaN, "weights": {}}', "bias"),
        ('{"version": "x", "bias": -3.0, "weights": {"off_session": Infinity}}', "off_session"),
        ('{"version": "x", "bias": -3.0, "weights": {"off_session": -Infinity}}', "off_session"),
        ('{"version": "x", "bias": -3.0, "weights": {"off_session": "1.5"}}', "off_session"),
        ('{"version": "x", "bias": true, "weights": {}}', "bias"),
        ('{"version": "x", "weights": {}}', "bias"),
    ],
)
def test_weights_that_are_not_finite_numbers_are_refused_when_loaded(
    tmp_path: Path, document: str, named: str
) -> None:
    path = tmp_path / "weights.json"
    path.write_text(document)
    with pytest.raises(ValueError, match=named) as refused:
        load_weights(path)
    assert str(path) in str(refused.value)
