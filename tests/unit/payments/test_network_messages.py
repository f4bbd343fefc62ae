"""The network's messages as payments keep them: a charge's failure_message, an intent's
last_payment_error and the stored network answer are made of them, so a card number the
network quotes is masked on the way in."""

from remit.payments.network import outcome_from_result, outcome_of_operation
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.vault.v1 import vault_pb2


def test_a_card_number_in_an_authorizations_message_is_masked() -> None:
    said = "Declined: 4242 4242 4242 4242 is on a block list"
    for result in (
        acquirer_pb2.AuthorizationResult(approved=False, message=said),
        vault_pb2.ForwardedAuthorization(approved=False, message=said),
    ):
        outcome = outcome_from_result(result)
        assert outcome.message == "Declined: [card ****4242] is on a block list"
        assert "4242424242424242" not in str(outcome.as_json()).replace(" ", "")


def test_a_card_number_in_an_operations_message_is_masked() -> None:
    operation = acquirer_pb2.Operation(id="op_1", message="refused for 4000056655665556")
    assert outcome_of_operation(operation).message == "refused for [card ****5556]"
    assert outcome_of_operation(acquirer_pb2.Operation(id="op_2")).message is None


def test_a_long_reference_in_a_network_message_is_kept() -> None:
    operation = acquirer_pb2.Operation(id="op_1", message="refused, ref 45678901234567890123")
    assert outcome_of_operation(operation).message == "refused, ref 45678901234567890123"
