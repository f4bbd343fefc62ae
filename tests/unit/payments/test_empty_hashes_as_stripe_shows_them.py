"""Hashes remit never fills (an intent's tip, a charge's fraud reports) render as Stripe shows
them: `{}`, never null and never a hash of nulls. Stripe's spec gives their fields no null
(`payment_flows_amount_details_resource_tip.amount`, `charge_fraud_details.*_report`), and its
example objects show `"amount_details": {"tip": {}}` and `"fraud_details": {}`. No version
change touches them, so every version renders them the same."""

from datetime import UTC, datetime

import pytest

from remit.core.jsonview import to_json
from remit.payments.charges import CardSnapshot, Charge, ChargeStatus
from remit.payments.domain import CaptureMethod, ConfirmationMethod, PaymentIntent, Status
from remit.payments.grpc import charge_message, payment_intent_message
from remit.versioning import render
from versions import KNOWN_VERSIONS

NOW = datetime(2026, 12, 6, tzinfo=UTC)
INTENT = PaymentIntent(
    id="pi_1",
    account_id="acct_1",
    amount_minor=1000,
    currency="usd",
    status=Status.REQUIRES_PAYMENT_METHOD,
    capture_method=CaptureMethod.AUTOMATIC,
    confirmation_method=ConfirmationMethod.AUTOMATIC,
    client_secret="pi_1_secret_x",
    created_at=NOW,
    updated_at=NOW,
)
CHARGE = Charge(
    id="ch_1",
    account_id="acct_1",
    payment_intent_id="pi_1",
    amount_minor=1000,
    currency="usd",
    status=ChargeStatus.SUCCEEDED,
    payment_method_id="pm_1",
    card=CardSnapshot(brand="visa", last4="4242", exp_month=12, exp_year=2034),
    created_at=NOW,
    updated_at=NOW,
)


@pytest.mark.parametrize("version", KNOWN_VERSIONS)
def test_an_intents_tip_is_an_empty_hash_at_every_version(version: str) -> None:
    rendered = render(to_json(payment_intent_message(INTENT)), version, related_unavailable=True)
    assert rendered["amount_details"] == {"tip": {}}


@pytest.mark.parametrize("version", KNOWN_VERSIONS)
def test_a_charges_fraud_details_are_an_empty_hash_at_every_version(version: str) -> None:
    rendered = render(to_json(charge_message(CHARGE)), version, related_unavailable=True)
    assert rendered["fraud_details"] == {}
