"""Who a call is for comes from its metadata (`remit.grpcutil.metadata.call_context`). A call
without a usable `remit-account-id` (none, or one no account could have) is a malformed
request, not a failed credential: its credential (the internal token) was checked before, and
passed. A request id is at most 255
printable ASCII characters (gRPC's own clients send no others as text, but a server must not
count on its callers')."""

from typing import Any, cast

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import MAX_RANDOM_LENGTH
from remit.grpcutil.metadata import (
    ACCOUNT_KEY,
    IDEMPOTENCY_KEY,
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_KEY,
    call_context,
)

ACCOUNT = "acct_1"


class _Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _context(*metadata: tuple[str, str]) -> grpc.aio.ServicerContext[Any, Any]:
    return cast("grpc.aio.ServicerContext[Any, Any]", _Context(metadata))


@pytest.mark.parametrize(
    "metadata",
    [(), ((ACCOUNT_KEY, ""),), ((ACCOUNT_KEY, "cus_123"),), ((IDEMPOTENCY_KEY, "k"),)],
)
def test_a_call_without_an_account_is_invalid_argument_naming_the_metadata(
    metadata: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(RemitError) as refused:
        call_context(_context(*metadata))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, ACCOUNT_KEY)
    assert ACCOUNT_KEY in refused.value.message


@pytest.mark.parametrize(
    "account_id",
    [
        "acct_1\x00",
        "acct_\u00e9t\u00e9",
        "acct_" + "a" * 300,
        "acct_a b",
        "acct_a-b",
        "acct_",
        "acct_1\n",
        "ACCT_1",
    ],
)
def test_an_account_id_no_account_could_have_is_invalid_argument_naming_the_metadata(
    account_id: str,
) -> None:
    with pytest.raises(RemitError) as refused:
        call_context(_context((ACCOUNT_KEY, account_id)))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, ACCOUNT_KEY)
    # The id is not echoed: it may be any text.
    assert refused.value.message == (
        f"The {ACCOUNT_KEY} metadata must be an account id: acct_ followed by at most "
        f"{MAX_RANDOM_LENGTH} letters and digits."
    )


def test_a_call_naming_an_account_is_for_that_account() -> None:
    call = call_context(_context((ACCOUNT_KEY, "acct_123"), (IDEMPOTENCY_KEY, "k")))
    assert (call.account_id, call.idempotency_key) == ("acct_123", "k")


@pytest.mark.parametrize("request_id", ["req_1", "r" * MAX_REQUEST_ID_LENGTH, "trace id ~!"])
def test_a_request_id_of_printable_ascii_within_its_limit_is_kept(request_id: str) -> None:
    context = _context((ACCOUNT_KEY, ACCOUNT), (REQUEST_ID_KEY, request_id))
    assert call_context(context).request_id == request_id


@pytest.mark.parametrize(
    "request_id", ["r" * (MAX_REQUEST_ID_LENGTH + 1), "req\t1", "req\x7f", "req_\u00e9"]
)
def test_any_other_request_id_is_the_callers_mistake(request_id: str) -> None:
    with pytest.raises(RemitError) as refused:
        call_context(_context((ACCOUNT_KEY, ACCOUNT), (REQUEST_ID_KEY, request_id)))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, REQUEST_ID_KEY)
