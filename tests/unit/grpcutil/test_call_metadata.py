"""What a call's metadata may say: a request id is at most 255 printable ASCII characters
(gRPC's own clients send no others as text, but a server must not count on its callers')."""

from typing import Any, cast

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.metadata import (
    ACCOUNT_KEY,
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_KEY,
    call_context,
)

ACCOUNT = "acct_1"


class _Context:
    def __init__(self, *metadata: tuple[str, str]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _context(request_id: str) -> "grpc.aio.ServicerContext[Any, Any]":
    context = _Context((ACCOUNT_KEY, ACCOUNT), (REQUEST_ID_KEY, request_id))
    return cast("grpc.aio.ServicerContext[Any, Any]", context)


@pytest.mark.parametrize("request_id", ["req_1", "r" * MAX_REQUEST_ID_LENGTH, "trace id ~!"])
def test_a_request_id_of_printable_ascii_within_its_limit_is_kept(request_id: str) -> None:
    assert call_context(_context(request_id)).request_id == request_id


@pytest.mark.parametrize(
    "request_id", ["r" * (MAX_REQUEST_ID_LENGTH + 1), "req\t1", "req\x7f", "req_\u00e9"]
)
def test_any_other_request_id_is_the_callers_mistake(request_id: str) -> None:
    with pytest.raises(RemitError) as refused:
        call_context(_context(request_id))
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, REQUEST_ID_KEY)
