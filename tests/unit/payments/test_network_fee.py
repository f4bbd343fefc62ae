"""The fee the card network withholds, from its answers to what the ledger posting reads."""

from remit.payments.ledger_postings import captured_network_fee
from remit.payments.network import (
    OperationOutcome,
    network_fee,
    outcome_from_result,
    with_capture_fee,
)
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.vault.v1 import vault_pb2


def test_a_reported_fee_is_read_and_an_unreported_one_is_unknown_not_zero() -> None:
    """An answer the vault stored before fees were reported, or one from an acquirer that does
    not report them, says nothing of the fee: booking 0 for it would hide what was withheld."""
    assert outcome_from_result(vault_pb2.ForwardedAuthorization(fee=150)).network_fee_minor == 150
    assert outcome_from_result(vault_pb2.ForwardedAuthorization(fee=0)).network_fee_minor == 0
    assert outcome_from_result(vault_pb2.ForwardedAuthorization()).network_fee_minor is None
    assert network_fee(acquirer_pb2.Operation(fee=50)) == 50
    assert network_fee(acquirer_pb2.Operation()) is None


def test_the_stored_answer_carries_the_fee_of_whichever_step_captured() -> None:
    authorized = outcome_from_result(acquirer_pb2.AuthorizationResult(approved=True, fee=0))
    stored = authorized.as_json()
    assert captured_network_fee(stored) == 0
    captured = with_capture_fee(stored, OperationOutcome(True, "op_1", 3_333, None, None, 50))
    assert captured_network_fee(captured) == 50
    assert {k: v for k, v in captured.items() if k != "network_fee"} == {
        k: v for k, v in stored.items() if k != "network_fee"
    }
    unreported = with_capture_fee(stored, OperationOutcome(True, "op_2", 3_333, None, None))
    assert captured_network_fee(unreported) is None


def test_an_answer_stored_before_fees_were_recorded_books_no_fee() -> None:
    assert captured_network_fee({"approved": True, "captured": True}) is None
    assert captured_network_fee({"network_fee": None}) is None
