"""The dispute's life as pure transitions: opened by the cardholder, answered with evidence or
accepted by the merchant, decided by the issuer as Stripe's test mode does."""

from datetime import UTC, datetime, timedelta

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.ledger.postings import dispute_reinstatement, dispute_withdrawal
from remit.ledger.reserved import refuse_derived_id
from remit.payments.disputes import (
    EVIDENCE_WINDOW,
    Dispute,
    DisputeReason,
    DisputeStatus,
    accepted,
    decision_in_test_mode,
    dispute_fee_minor,
    lost,
    network_reason_code,
    opened,
    refund_failed,
    takes_failed_refunds,
    updated,
    won,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


def _opened() -> Dispute:
    return opened(
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
            amount_minor=0,
            currency="usd",
            card_brand="visa",
            withdrawal_id="txn_1",
            now=NOW,
        )


@pytest.mark.parametrize(
    ("currency", "fee"),
    [
        ("usd", 1500),  # $15.00, Stripe's US fee
        ("eur", 1500),  # 15.00 EUR
        ("jpy", 15),  # ¥15, not ¥1,500
        ("kwd", 15_000),  # 15.000 KWD, not 1.500
        ("isk", 1500),  # 15 kr in Stripe's hundredths of a króna, not 1,500 kr
    ],
)
def test_the_dispute_fee_is_fifteen_major_units_of_its_currency(currency: str, fee: int) -> None:
    assert dispute_fee_minor(currency) == fee


@pytest.mark.parametrize(
    ("brand", "code"),
    [("visa", "10.4"), ("mastercard", "4837"), ("amex", "F29"), ("discover", "UA02")],
)
def test_a_fraud_dispute_has_its_networks_code_of_card_absent_fraud(brand: str, code: str) -> None:
    assert network_reason_code(DisputeReason.FRAUDULENT, brand) == code


def test_a_network_whose_code_is_not_known_has_none() -> None:
    assert network_reason_code(DisputeReason.FRAUDULENT, "jcb") is None
    assert network_reason_code(DisputeReason.FRAUDULENT, None) is None
    assert _opened().network_reason_code == "10.4"


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


def test_an_update_giving_evidence_submits_it_unless_told_not_to_as_stripes_default() -> None:
    # `submit` not given: Stripe's default, true.
    answered = updated(
        _opened(), evidence={"customer_name": "Jo"}, metadata={}, submit=None, now=NOW
    )
    assert (answered.status, answered.submission_count) == (DisputeStatus.UNDER_REVIEW, 1)
    assert dict(answered.evidence) == {"customer_name": "Jo"}
    # A field cleared is evidence given too.
    cleared = updated(_opened(), evidence={"customer_name": ""}, metadata={}, submit=None, now=NOW)
    assert (cleared.status, cleared.submission_count) == (DisputeStatus.UNDER_REVIEW, 1)
    staged = updated(
        _opened(), evidence={"customer_name": "Jo"}, metadata={}, submit=False, now=NOW
    )
    assert (staged.status, staged.submission_count) == (DisputeStatus.NEEDS_RESPONSE, 0)


def test_an_update_of_metadata_alone_submits_nothing_unless_told_to() -> None:
    staged = updated(
        _opened(), evidence={"customer_name": "Jo"}, metadata={}, submit=False, now=NOW
    )
    relabeled = updated(staged, evidence={}, metadata={"case": "7"}, submit=None, now=NOW)
    assert (relabeled.status, relabeled.submission_count) == (DisputeStatus.NEEDS_RESPONSE, 0)
    assert dict(relabeled.metadata) == {"case": "7"}
    submitted = updated(staged, evidence={}, metadata={}, submit=True, now=NOW)
    assert (submitted.status, submitted.submission_count) == (DisputeStatus.UNDER_REVIEW, 1)


def test_a_submitted_dispute_relabeled_without_submit_is_not_refused() -> None:
    submitted = updated(_opened(), evidence={}, metadata={}, submit=True, now=NOW)
    relabeled = updated(submitted, evidence={}, metadata={"k": "v"}, submit=None, now=NOW)
    assert (relabeled.status, relabeled.submission_count) == (DisputeStatus.UNDER_REVIEW, 1)
    with pytest.raises(RemitError) as refused:
        updated(submitted, evidence={"customer_name": "Jo"}, metadata={}, submit=None, now=NOW)
    assert refused.value.code == "dispute_not_updatable"


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


def _submitted(text: str | None) -> Dispute:
    evidence = {} if text is None else {"uncategorized_text": text}
    return updated(_opened(), evidence=evidence, metadata={}, submit=True, now=NOW)


@pytest.mark.parametrize(
    ("text", "decision"),
    [
        ("winning_evidence", DisputeStatus.WON),
        ("losing_evidence", DisputeStatus.LOST),
        # Only the exact values decide; anything else waits for a decision never made.
        ("Winning_evidence", None),
        ("winning_evidence ", None),
        ("I have winning_evidence", None),
        (None, None),
    ],
)
def test_the_submitted_uncategorized_text_decides_as_stripes_test_mode(
    text: str | None, decision: DisputeStatus | None
) -> None:
    assert decision_in_test_mode(_submitted(text)) is decision


def test_evidence_only_staged_asks_for_no_decision() -> None:
    staged = updated(
        _opened(),
        evidence={"uncategorized_text": "winning_evidence"},
        metadata={},
        submit=False,
        now=NOW,
    )
    assert decision_in_test_mode(staged) is None
    decided = won(_submitted("winning_evidence"), reinstatement_id="txn_2", now=NOW)
    assert decision_in_test_mode(decided) is None  # decided once


def test_a_won_dispute_lists_its_reinstatement_after_its_withdrawal() -> None:
    later = NOW + timedelta(hours=1)
    decided = won(_submitted("winning_evidence"), reinstatement_id="txn_2", now=later)
    assert decided.status is DisputeStatus.WON
    assert decided.balance_transaction_ids == ("txn_1", "txn_2")
    assert (decided.updated_at, decided.submission_count) == (later, 1)


def test_a_lost_dispute_moves_no_money() -> None:
    decided = lost(_submitted("losing_evidence"), NOW)
    assert decided.status is DisputeStatus.LOST
    assert decided.balance_transaction_ids == ("txn_1",)


def test_only_a_dispute_under_review_is_decided() -> None:
    with pytest.raises(ValueError, match="under review"):
        won(_opened(), reinstatement_id="txn_2", now=NOW)
    with pytest.raises(ValueError, match="under review"):
        lost(lost(_submitted("losing_evidence"), NOW), NOW)


def test_a_decided_dispute_takes_no_evidence_nor_close() -> None:
    for decided in (
        won(_submitted("winning_evidence"), reinstatement_id="txn_2", now=NOW),
        lost(_submitted("losing_evidence"), NOW),
    ):
        with pytest.raises(RemitError) as refused:
            updated(decided, evidence={"customer_name": "Jo"}, metadata={}, submit=True, now=NOW)
        assert (refused.value.kind, refused.value.code) == (
            ErrorKind.FAILED_PRECONDITION,
            "dispute_not_updatable",
        )
    with pytest.raises(RemitError) as unclosable:
        accepted(won(_submitted("winning_evidence"), reinstatement_id="txn_2", now=NOW), NOW)
    assert unclosable.value.code == "dispute_not_closable"


def test_the_reinstatement_gives_back_the_amount_and_keeps_the_fee() -> None:
    withdrawal = dispute_withdrawal(
        "txn_1",
        account_id="acct_1",
        dispute_id="dp_1",
        charge_id="ch_1",
        amount_minor=2500,
        fee_minor=1500,
        currency="usd",
        now=NOW,
    )
    reinstatement = dispute_reinstatement(
        "txn_2",
        account_id="acct_1",
        dispute_id="dp_1",
        charge_id="ch_1",
        amount_minor=2500,
        currency="usd",
        now=NOW,
    )
    assert (reinstatement.type.value, reinstatement.reporting_category) == (
        "adjustment",
        "dispute_reversal",
    )
    assert (reinstatement.amount, reinstatement.fee, reinstatement.net) == (2500, 0, 2500)
    assert reinstatement.fee_details == ()
    assert reinstatement.status.value == "available"
    assert (reinstatement.source_id, reinstatement.charge_id) == ("dp_1", "ch_1")
    assert reinstatement.ledger_transaction_id == "dp_1:dispute_reversal"
    assert reinstatement.description == "Chargeback reversal for ch_1"
    # A won dispute costs the merchant its fee, nothing more.
    assert withdrawal.net + reinstatement.net == -1500


def test_a_callers_posting_cannot_take_the_reinstatements_id() -> None:
    with pytest.raises(RemitError):
        refuse_derived_id("dp_1:dispute_reversal", "transaction_id")


def test_a_refund_failing_after_the_dispute_opened_grows_it_unless_it_was_won() -> None:
    later = NOW + timedelta(hours=1)
    for dispute in (_opened(), _submitted("losing_evidence"), lost(_submitted("x"), NOW)):
        grown = refund_failed(dispute, amount_minor=500, withdrawal_id="txn_9", now=later)
        assert (grown.amount_minor, grown.status) == (3000, dispute.status)
        assert grown.balance_transaction_ids == (*dispute.balance_transaction_ids, "txn_9")
        assert grown.updated_at == later
    decided = won(_submitted("winning_evidence"), reinstatement_id="txn_2", now=NOW)
    assert not takes_failed_refunds(decided)
    with pytest.raises(ValueError, match="won"):
        refund_failed(decided, amount_minor=500, withdrawal_id="txn_9", now=later)
    with pytest.raises(ValueError, match="positive"):
        refund_failed(_opened(), amount_minor=0, withdrawal_id="txn_9", now=later)


def test_the_withdrawal_of_a_failed_refund_is_the_disputes_and_takes_no_second_fee() -> None:
    withdrawal = dispute_withdrawal(
        "txn_9",
        account_id="acct_1",
        dispute_id="dp_1",
        charge_id="ch_1",
        amount_minor=500,
        fee_minor=0,
        currency="usd",
        now=NOW,
        refund_id="re_1",
    )
    assert (withdrawal.type.value, withdrawal.reporting_category) == ("adjustment", "dispute")
    assert (withdrawal.amount, withdrawal.fee, withdrawal.net) == (-500, 0, -500)
    assert withdrawal.fee_details == ()
    assert (withdrawal.source_id, withdrawal.charge_id) == ("dp_1", "ch_1")
    assert withdrawal.ledger_transaction_id == "dp_1:re_1:dispute"
    with pytest.raises(RemitError):
        refuse_derived_id("dp_1:re_1:dispute", "transaction_id")
