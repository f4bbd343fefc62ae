"""Stripe's `charge.outcome` for a declined card number: `invalid` / `not_sent_to_network` when
the network refused it before any issuer saw it, `issuer_declined` / `declined_by_network` when
the issuer declined it. Never an issuer's decline that was not sent to the network."""

import pytest

from remit.payments.risk import NOT_ASSESSED, outcome_json


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
