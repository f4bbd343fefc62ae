"""A refusal leaves a process with any card number in its message or param masked, however
it was typed: a caller may put one where an id goes, with its CVC after it."""

import pytest

from remit.core.errors import RemitError, invalid, not_found
from remit.grpcutil.errors import to_rpc_status
from remit_api.common.v1 import common_pb2


@pytest.mark.parametrize(
    ("typed", "last4"),
    [
        ("4242424242424242 123", "4242"),
        ("4242  4242  4242  4242", "4242"),
        ("5555-5555-5555-4444-12", "4444"),
        ("378282246310005 1234", "0005"),
    ],
)
def test_a_card_number_where_an_id_goes_is_masked_in_the_status_and_its_detail(
    typed: str, last4: str
) -> None:
    status = to_rpc_status(not_found("customer", typed))
    assert status.message == f"No such customer: '[card ****{last4}]'"
    detail = common_pb2.ErrorDetail()
    assert status.details[0].Unpack(detail)
    assert detail.message == status.message


def test_a_card_number_in_a_param_is_masked_in_the_detail() -> None:
    error: RemitError = invalid("Unknown parameter.", param="metadata[4242424242424242 123]")
    detail = common_pb2.ErrorDetail()
    assert to_rpc_status(error).details[0].Unpack(detail)
    assert detail.param == "metadata[[card ****4242]]"


def test_a_long_id_that_is_no_card_number_is_quoted_as_it_is() -> None:
    """An id of 20 digits whose first 19 pass the Luhn check: a caller must read it back."""
    status = to_rpc_status(not_found("customer", "45678901234567890123"))
    assert status.message == "No such customer: '45678901234567890123'"
    error = invalid("Unknown parameter.", param="metadata[2026-12-01 2026-12-02 2026-12-03]")
    detail = common_pb2.ErrorDetail()
    assert to_rpc_status(error).details[0].Unpack(detail)
    assert detail.param == "metadata[2026-12-01 2026-12-02 2026-12-03]"
