"""Stripe's `charge.outcome` for a declined card number: `invalid` / `not_sent_to_network` when
the network refused it before any issuer saw it, `issuer_declined` / `declined_by_network` when
the issuer declined it. Never an issuer's decline that was not sent to the network."""

import pytest

from remit.payments.risk import ALLOW, NOT_ASSESSED, RiskVerdict, outcome_json


def _declined(network_status: str) -> dict[str, object]:
    return {
        "approved": False,
        "network_status": network_status,
        "code": "incorrect_number",
        "decline_code": None,
        "message": "Your card number is incorrect.",
    }


def test_an_incorrect_number_refused_before_the_network_is_invalid() -> None:
    outcome = outcome_json(NOT_ASSESSED, _declined("not_sent_to_network"))
    assert (outcome["type"], outcome["network_status"], outcome["reason"]) == (
        "invalid",
        "not_sent_to_network",
        None,
    )
    assert outcome["seller_message"] == (
        "This payment was not sent to the card network: its card number is incorrect."
    )


def test_an_incorrect_number_the_issuer_declined_is_the_issuers_decline() -> None:
    outcome = outcome_json(NOT_ASSESSED, _declined("declined_by_network"))
    assert (outcome["type"], outcome["network_status"], outcome["reason"]) == (
        "issuer_declined",
        "declined_by_network",
        "incorrect_number",
    )


@pytest.mark.parametrize("network_status", ["not_sent_to_network", "declined_by_network"])
def test_the_outcome_type_and_network_status_agree(network_status: str) -> None:
    outcome = outcome_json(NOT_ASSESSED, _declined(network_status))
    sent = outcome["network_status"] != "not_sent_to_network"
    assert (outcome["type"] == "issuer_declined") is sent


def _blocked_as_fraudulent(network_status: str) -> dict[str, object]:
    return {
        "approved": False,
        "network_status": network_status,
        "code": "card_declined",
        "decline_code": "fraudulent",
        "message": "Your card was declined.",
    }


def test_a_payment_the_acquirer_blocks_as_fraudulent_before_the_network_is_blocked() -> None:
    normal = RiskVerdict(action=ALLOW, risk_level="normal", risk_score=12)
    outcome = outcome_json(normal, _blocked_as_fraudulent("not_sent_to_network"))
    assert outcome == {
        "type": "blocked",
        "network_status": "not_sent_to_network",
        "reason": "highest_risk_level",
        "risk_level": "highest",
        "risk_score": None,
        "rule": None,
        "seller_message": "The acquirer blocked this payment as too risky; it was not sent to "
        "the card network.",
    }
    # Radar's score stays when Radar too put the payment at the highest level (an allow rule
    # let it go on).
    highest = RiskVerdict(action=ALLOW, risk_level="highest", risk_score=91)
    assert outcome_json(highest, _blocked_as_fraudulent("not_sent_to_network"))["risk_score"] == 91


def test_a_fraudulent_decline_by_the_issuer_is_the_issuers_decline() -> None:
    outcome = outcome_json(NOT_ASSESSED, _blocked_as_fraudulent("declined_by_network"))
    assert (outcome["type"], outcome["network_status"], outcome["reason"]) == (
        "issuer_declined",
        "declined_by_network",
        "fraudulent",
    )
