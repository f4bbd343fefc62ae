"""A dispute as the API shows it: every field of Stripe's Dispute that stripe-python reads, with
the card, the network's reason code and how the evidence was submitted."""

from dataclasses import replace
from datetime import UTC, datetime

from remit.core.jsonview import to_json
from remit.payments.dispute_messages import dispute_message
from remit.payments.disputes import opened, updated

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_a_visa_fraud_dispute_shows_its_card_and_visas_code() -> None:
    dispute = opened(
        dispute_id="dp_1",
        account_id="acct_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        amount_minor=2500,
        currency="usd",
        card_brand="visa",
        withdrawal_id="txn_1",
        now=NOW,
    )
    shown = to_json(dispute_message(dispute, []))
    assert shown["network_reason_code"] == "10.4"
    assert shown["payment_method_details"] == {
        "type": "card",
        "card": {
            "brand": "visa",
            "case_type": "chargeback",
            "network": "visa",
            "network_reason_code": "10.4",
        },
    }
    assert (shown["enhanced_eligibility_types"], shown["intended_submission_method"]) == ([], None)
    evidence = shown["evidence"]
    assert isinstance(evidence, dict)
    assert (evidence["appeal"], evidence["enhanced_evidence"]) == (None, {})
    details = shown["evidence_details"]
    assert isinstance(details, dict)
    assert (details["enhanced_eligibility"], details["submission_method"]) == ({}, "not_submitted")

    submitted = updated(dispute, evidence={}, metadata={}, submit=True, now=NOW)
    details = to_json(dispute_message(submitted, []))["evidence_details"]
    assert isinstance(details, dict)
    assert details["submission_method"] == "manual"


def test_a_dispute_of_a_brand_without_a_known_code_or_of_no_kept_brand_shows_none() -> None:
    dispute = opened(
        dispute_id="dp_1",
        account_id="acct_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        amount_minor=2500,
        currency="usd",
        card_brand="jcb",
        withdrawal_id="txn_1",
        now=NOW,
    )
    shown = to_json(dispute_message(dispute, []))
    assert shown["network_reason_code"] is None
    assert shown["payment_method_details"] == {
        "type": "card",
        "card": {
            "brand": "jcb",
            "case_type": "chargeback",
            "network": "jcb",
            "network_reason_code": None,
        },
    }
    # Opened by a process of the version before the brand was kept.
    unkept = to_json(dispute_message(replace(dispute, card_brand=None), []))
    assert unkept["payment_method_details"] == {
        "type": "card",
        "card": {
            "brand": "unknown",
            "case_type": "chargeback",
            "network": "unknown",
            "network_reason_code": None,
        },
    }
