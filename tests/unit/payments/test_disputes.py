"""The dispute's life as pure transitions: opened by the cardholder, answered with evidence or
accepted by the merchant."""

from datetime import UTC, datetime, timedelta

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.disputes import (
    EVIDENCE_WINDOW,
    Dispute,
    DisputeStatus,
    accepted,
    dispute_fee_minor,
    opened,
    updated,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _opened() -> Dispute:
    return opened(
        dispute_id="dp_1",
        account_id="acct_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
        captured_minor=2500,
        currency="usd",
        withdrawal_id="txn_1",
        now=NOW,
    )


def test_a_dispute_opens_for_what_was_captured_and_waits_for_the_merchant() -> None:
    dispute = _opened()
    assert (dispute.amount_minor, dispute.reason.value, dispute.status) == (
        2500,
        "fraudulent",
        DisputeStatus.NEEDS_RESPONSE,
    )
    assert dispute.evidence_due_by == NOW + EVIDENCE_WINDOW
    assert timedelta(days=7) <= EVIDENCE_WINDOW <= timedelta(days=21)
    assert (dispute.has_evidence, dispute.submission_count, dispute.past_due) == (False, 0, False)
    assert dispute.balance_transaction_ids == ("txn_1",)


def test_nothing_uncaptured_can_be_disputed() -> None:
    with pytest.raises(ValueError, match="captured"):
        opened(
            dispute_id="dp_1",
            account_id="acct_1",
            charge_id="ch_1",
            payment_intent_id="pi_1",
            captured_minor=0,
            currency="usd",
            withdrawal_id="txn_1",
            now=NOW,
        )


def test_the_dispute_fee_is_stripes_us_fee_in_minor_units() -> None:
    assert dispute_fee_minor("usd") == 1500
    assert isinstance(dispute_fee_minor("eur"), int)


def test_evidence_is_merged_an_empty_value_clears_a_field_and_submitting_counts() -> None:
    staged = updated(
        _opened(),
        evidence={"customer_name": "Jo", "product_description": "A mug"},
        metadata={"k": "v"},
        submit=False,
        now=NOW,
    )
    assert staged.status is DisputeStatus.NEEDS_RESPONSE
    assert staged.has_evidence
    late = NOW + EVIDENCE_WINDOW + timedelta(seconds=1)
    submitted = updated(staged, evidence={"customer_name": ""}, metadata={}, submit=True, now=late)
    assert dict(submitted.evidence) == {"product_description": "A mug"}
    assert (submitted.status, submitted.submission_count, submitted.past_due) == (
        DisputeStatus.UNDER_REVIEW,
        1,
        True,
    )


def test_a_submitted_dispute_takes_metadata_but_no_more_evidence() -> None:
    submitted = updated(_opened(), evidence={}, metadata={}, submit=True, now=NOW)
    relabeled = updated(submitted, evidence={}, metadata={"k": "v"}, submit=False, now=NOW)
    assert dict(relabeled.metadata) == {"k": "v"}
    with pytest.raises(RemitError) as refused:
        updated(submitted, evidence={"customer_name": "Jo"}, metadata={}, submit=False, now=NOW)
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "dispute_not_updatable",
    )


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("receipt", "file_1", "parameter_invalid"),
        ("not_a_field", "x", "parameter_unknown"),
        ("customer_name", "x" * 5001, "parameter_invalid"),
    ],
)
def test_evidence_of_files_unknown_fields_or_too_long_is_refused(
    name: str, value: str, code: str
) -> None:
    with pytest.raises(RemitError) as refused:
        updated(_opened(), evidence={name: value}, metadata={}, submit=False, now=NOW)
    assert (refused.value.kind, refused.value.code, refused.value.param) == (
        ErrorKind.INVALID_ARGUMENT,
        code,
        f"evidence[{name}]",
    )


def test_accepting_a_dispute_loses_it_once_and_a_submitted_one_cannot_be_accepted() -> None:
    lost = accepted(_opened(), NOW)
    assert lost.status is DisputeStatus.LOST
    assert accepted(lost, NOW) is lost
    submitted = updated(_opened(), evidence={}, metadata={}, submit=True, now=NOW)
    with pytest.raises(RemitError) as refused:
        accepted(submitted, NOW)
    assert refused.value.code == "dispute_not_closable"
