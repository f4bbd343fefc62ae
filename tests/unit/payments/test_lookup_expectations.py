"""What each look-up expects at the acquirer, and which differences refuse a record."""

import logging
from datetime import UTC, datetime

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import CardSnapshot, Charge, ChargeStatus, Refund, RefundStatus
from remit.payments.lookup_expectations import (
    differing_fields,
    expected_authorization,
    expected_capture,
    expected_refund,
    expected_void,
    refuse_unless_expected,
)
from remit_api.acquirer.v1 import acquirer_pb2

NOW = datetime(2026, 12, 6, tzinfo=UTC)
MERCHANT = "acct_1Merchant"
AUTHORIZATION = "auth_1Held"
CHARGE = Charge(
    id="ch_1Sale",
    account_id=MERCHANT,
    payment_intent_id="pi_1Sale",
    amount_minor=1000,
    currency="usd",
    status=ChargeStatus.SUCCEEDED,
    payment_method_id="pm_1Card",
    card=CardSnapshot(brand="visa", last4="4242", exp_month=12, exp_year=2034),
    created_at=NOW,
    updated_at=NOW,
    authorization_id=AUTHORIZATION,
)
REFUND = Refund(
    id="re_1Part",
    account_id=MERCHANT,
    charge_id=CHARGE.id,
    payment_intent_id=CHARGE.payment_intent_id,
    amount_minor=400,
    currency="usd",
    status=RefundStatus.PENDING,
    created_at=NOW,
    updated_at=NOW,
)


def held(of_kind: acquirer_pb2.OperationKind.ValueType, **fields: object) -> acquirer_pb2.Operation:
    """An approved operation of `of_kind`, of the charge's merchant in its currency, with
    `fields` (which may change any of that)."""
    operation = acquirer_pb2.Operation(
        id="op_1Held",
        reference="ref",
        kind=of_kind,
        currency="usd",
        merchant_id=MERCHANT,
        approved=True,
    )
    for name, value in fields.items():
        setattr(operation, name, value)
    return operation


def authorize(*, captured: bool, approved: bool = True, **fields: object) -> acquirer_pb2.Operation:
    terms: dict[str, object] = {
        "amount": 1000,
        "authorization_id": AUTHORIZATION if approved else "",
        "approved": approved,
        **fields,
    }
    operation = held(acquirer_pb2.OPERATION_KIND_AUTHORIZE, **terms)
    operation.authorization.approved = approved
    operation.authorization.captured = captured
    return operation


def test_the_operation_sent_is_the_one_expected_for_each_kind() -> None:
    assert (
        differing_fields(expected_authorization(CHARGE, capture=False), authorize(captured=False))
        == []
    )
    assert (
        differing_fields(expected_authorization(CHARGE, capture=True), authorize(captured=True))
        == []
    )
    partial = held(acquirer_pb2.OPERATION_KIND_CAPTURE, amount=600, authorization_id=AUTHORIZATION)
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), partial) == []
    released = held(acquirer_pb2.OPERATION_KIND_VOID, amount=1000, authorization_id=AUTHORIZATION)
    assert differing_fields(expected_void(CHARGE, AUTHORIZATION), released) == []
    refunded = held(acquirer_pb2.OPERATION_KIND_REFUND, amount=400, authorization_id=AUTHORIZATION)
    assert differing_fields(expected_refund(CHARGE, AUTHORIZATION, REFUND), refunded) == []


@pytest.mark.parametrize(
    ("changes", "differing"),
    [
        ({"amount": 1001}, ["amount"]),
        ({"currency": "eur"}, ["currency"]),
        ({"merchant_id": "acct_1Else"}, ["merchant_id"]),
        ({"kind": acquirer_pb2.OPERATION_KIND_REFUND}, ["kind"]),
        ({"authorization_id": "auth_1Else"}, ["authorization_id"]),
        ({"amount": 999, "merchant_id": "acct_1Else"}, ["amount", "merchant_id"]),
    ],
)
def test_a_capture_of_other_terms_is_refused_by_the_fields_that_differ(
    changes: dict[str, object], differing: list[str]
) -> None:
    terms: dict[str, object] = {"amount": 1000, "authorization_id": AUTHORIZATION, **changes}
    operation = held(acquirer_pb2.OPERATION_KIND_CAPTURE, **terms)
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 1000), operation) == differing


def test_a_partial_capture_or_refund_expects_its_own_amount_not_the_charges() -> None:
    whole = held(acquirer_pb2.OPERATION_KIND_CAPTURE, amount=1000, authorization_id=AUTHORIZATION)
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), whole) == ["amount"]
    refunded = held(acquirer_pb2.OPERATION_KIND_REFUND, amount=1000, authorization_id=AUTHORIZATION)
    assert differing_fields(expected_refund(CHARGE, AUTHORIZATION, REFUND), refunded) == ["amount"]


def test_a_partial_capture_that_released_otherwise_than_the_core_would_differs() -> None:
    """The core's captures release the rest of the authorization (they never keep it open),
    and its ledger releases that rest with the capture: a record of the capture that released
    another amount, none (kept open) or more, moved other money than the charge will record."""
    for released, differing in ((400, []), (0, ["released"]), (399, ["released"])):
        capture = held(
            acquirer_pb2.OPERATION_KIND_CAPTURE,
            amount=600,
            authorization_id=AUTHORIZATION,
            released=released,
        )
        assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), capture) == differing
    whole = held(
        acquirer_pb2.OPERATION_KIND_CAPTURE,
        amount=1000,
        authorization_id=AUTHORIZATION,
        released=0,
    )
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 1000), whole) == []
    # A refused capture released nothing, whatever it asked; a record from before the acquirer
    # reported releases says nothing of it.
    refused = held(
        acquirer_pb2.OPERATION_KIND_CAPTURE,
        amount=600,
        authorization_id=AUTHORIZATION,
        approved=False,
        code="charge_expired_for_capture",
        released=0,
    )
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), refused) == []
    unsaid = held(acquirer_pb2.OPERATION_KIND_CAPTURE, amount=600, authorization_id=AUTHORIZATION)
    assert not unsaid.HasField("released")
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), unsaid) == []


def test_an_authorization_that_captured_otherwise_than_asked_differs() -> None:
    """Automatic capture is an AUTHORIZE with capture: one that held the funds instead, or
    captured what was to be held, moved other money than the charge would record."""
    assert differing_fields(
        expected_authorization(CHARGE, capture=False), authorize(captured=True)
    ) == ["authorization.captured"]
    assert differing_fields(
        expected_authorization(CHARGE, capture=True), authorize(captured=False)
    ) == ["authorization.captured"]
    # A declined authorization captured nothing, whatever it asked.
    declined = authorize(captured=False, approved=False)
    assert differing_fields(expected_authorization(CHARGE, capture=True), declined) == []


def test_an_authorization_learns_its_id_and_a_void_its_amount_from_the_record() -> None:
    """The id of the authorization an authorization made is what its look-up finds out; a
    void names no amount, and the acquirer records what it released (0 when it refused)."""
    assert (
        differing_fields(
            expected_authorization(CHARGE, capture=False),
            authorize(captured=False, authorization_id="auth_1New"),
        )
        == []
    )
    refused = held(
        acquirer_pb2.OPERATION_KIND_VOID,
        amount=0,
        authorization_id=AUTHORIZATION,
        approved=False,
        code="charge_already_captured",
    )
    assert differing_fields(expected_void(CHARGE, AUTHORIZATION), refused) == []


def test_a_currency_in_capitals_is_the_same_currency() -> None:
    operation = authorize(captured=False, currency="USD")
    assert differing_fields(expected_authorization(CHARGE, capture=False), operation) == []


def test_what_an_older_record_may_lack_is_not_compared() -> None:
    """The fee and the settlement time are optional: a record from before they were reported
    has neither, and is still the operation expected."""
    operation = held(
        acquirer_pb2.OPERATION_KIND_CAPTURE, amount=600, authorization_id=AUTHORIZATION
    )
    assert not operation.HasField("fee")
    assert not operation.HasField("settled_at")
    assert differing_fields(expected_capture(CHARGE, AUTHORIZATION, 600), operation) == []


def test_a_record_that_differs_is_refused_as_remits_own_error_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    operation = held(acquirer_pb2.OPERATION_KIND_REFUND, amount=401, authorization_id=AUTHORIZATION,
                     currency="eur")  # fmt: skip
    with (
        caplog.at_level(logging.ERROR, logger="remit.payments.lookup_expectations"),
        pytest.raises(RemitError) as raised,
    ):
        refuse_unless_expected(REFUND.id, expected_refund(CHARGE, AUTHORIZATION, REFUND), operation)
    assert (raised.value.kind, raised.value.error_type) == (ErrorKind.INTERNAL, "api_error")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert REFUND.id in message
    assert "op_1Held" in message
    assert "amount, currency differ" in message

    refuse_unless_expected(
        REFUND.id,
        expected_refund(CHARGE, AUTHORIZATION, REFUND),
        held(acquirer_pb2.OPERATION_KIND_REFUND, amount=400, authorization_id=AUTHORIZATION),
    )
