"""What is stored of a failed try at a held request, and how the command shows an age."""

import asyncio
from datetime import UTC, datetime

import psycopg.errors
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.payments.after_the_network import recorded_after_the_network
from remit.payments.held_requests import EXCEPTION_CODE, MISMATCH_CODE, failure_of
from remit.payments.held_requests_command import age, render_retry
from remit.payments.idempotency import DATABASE_LIMIT_FAILURE
from remit.payments.lookup_expectations import expected_authorization, refuse_unless_expected
from remit.payments.network import card_key_unavailable, network_unavailable
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.unit.payments.test_lookup_expectations import CHARGE, held

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_a_record_held_otherwise_keeps_its_reference_operation_and_differing_fields() -> None:
    other = held(acquirer_pb2.OPERATION_KIND_AUTHORIZE, amount=1001, currency="eur")
    with pytest.raises(RemitError) as refused:
        refuse_unless_expected("ch_1Sale", expected_authorization(CHARGE, capture=False), other)
    failure = failure_of(refused.value, AT)
    assert (failure.code, failure.reference, failure.operation_id, failure.differing) == (
        MISMATCH_CODE,
        "ch_1Sale",
        "op_1Held",
        ("amount", "currency"),
    )
    assert failure.message == (
        "the acquirer holds operation op_1Held under ch_1Sale, which is not the operation this "
        "request sent: amount, currency differ; nothing was applied"
    )
    # The client is told none of it.
    assert "op_1Held" not in refused.value.message
    assert refused.value.code is None


def test_a_refusal_keeps_its_code_or_kind_and_its_message() -> None:
    failure = failure_of(network_unavailable(), AT)
    assert (failure.code, failure.message, failure.reference) == (
        "unavailable",
        "The card network is not responding right now. Please retry shortly.",
        None,
    )
    coded = RemitError(message="Gone.", kind=ErrorKind.NOT_FOUND, code="resource_missing")
    assert failure_of(coded, AT).code == "resource_missing"


def test_an_attempt_waiting_for_its_card_s_key_says_so() -> None:
    """The vault lacked the key version to open the card: the attempt waits until it is back,
    and an operator reading `remit held-requests` sees why, not a bare `unavailable`."""
    assert failure_of(card_key_unavailable(), AT).code == "card_key_unavailable"


def test_another_exception_keeps_its_type_and_first_line_masked_and_short() -> None:
    error = ValueError(
        "bad row 4242424242424242 at postgresql://remit:s3cret@db/remit\nSELECT * FROM cards"
    )
    failure = failure_of(error, AT)
    assert failure.code == EXCEPTION_CODE
    assert failure.message.startswith("ValueError: bad row ")
    assert "4242424242424242" not in failure.message
    assert "s3cret" not in failure.message
    assert "SELECT" not in failure.message
    assert len(failure_of(RuntimeError("x" * 5000), AT).message) == 500
    assert failure_of(KeyError(), AT).message == "KeyError"


def test_a_failure_to_record_what_the_network_did_keeps_the_refusal_behind_it() -> None:
    """Its client is told only that recording failed, to retry; the operator needs the
    ledger's own refusal, which is what the try's failure keeps (masked as ever)."""

    async def refused_by_the_ledger() -> None:
        raise RemitError(
            message="Pending transaction 'ltx_1' was already voided (card 4242424242424242).",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="pending_transaction_already_voided",
        )

    with pytest.raises(RemitError) as recording:
        asyncio.run(recorded_after_the_network(refused_by_the_ledger(), what="a capture"))
    assert recording.value.kind is ErrorKind.INTERNAL
    failure = failure_of(recording.value, AT)
    assert failure.code == "pending_transaction_already_voided"
    assert failure.message.startswith("Pending transaction 'ltx_1' was already voided (card ")
    assert "4242424242424242" not in failure.message


def test_a_database_limit_met_recording_what_the_network_did_is_one_the_completer_leaves() -> None:
    """The client is told an internal error; the try's failure keeps the limit behind it, which
    is what stops the completer trying again (it would meet the limit every time)."""

    async def over_a_limit() -> None:
        raise psycopg.errors.ProgramLimitExceeded("index row size 9000 exceeds maximum 2712")

    with pytest.raises(RemitError) as recording:
        asyncio.run(recorded_after_the_network(over_a_limit(), what="an authorization"))
    failure = failure_of(recording.value, AT)
    assert failure.code == DATABASE_LIMIT_FAILURE
    assert failure.message.startswith("ProgramLimitExceeded: index row size 9000")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45, "45s"), (845, "14m05s"), (11_520, "3h12m"), (183_600, "2d03h")],
)
def test_an_age_is_shown_in_its_two_largest_units(seconds: int, shown: str) -> None:
    assert age(seconds) == shown


def test_a_finished_retry_under_a_key_remit_made_up_names_what_it_is_about() -> None:
    """No client holds such a key (the request came without one): no retry of its client's
    gets the stored answer, so the request's objects and id say where to look."""
    held = pb.HeldRequest(
        endpoint="CapturePaymentIntent",
        payment_intent="pi_1Held",
        charge="ch_1Held",
        request_id="req_1Capture",
        completer_attempts=2,
    )
    assert render_retry("finished", "acct_1A", "remit-auto-abc", held) == (
        "finished: CapturePaymentIntent under remit-auto-abc of acct_1A; no client holds its "
        "key (remit made it up), so no retry gets the stored answer: look at ch_1Held, "
        "req_1Capture (tries: 2)\n"
    )
    # A client's own key, even one sent with the publishable key, is retried under.
    for key in ("capture-1", "remit-publishable/capture-1"):
        assert render_retry("finished", "acct_1A", key, held) == (
            f"finished: CapturePaymentIntent under {key} of acct_1A; its client's retry with "
            "the key gets the stored answer (tries: 2)\n"
        )
