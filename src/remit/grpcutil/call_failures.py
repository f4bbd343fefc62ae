"""A failed call from an admin command to one of remit's services, in words an operator acts on.

Three cases read differently: the service could not be reached (nothing answered: is it
running, is the address right?), it refused the request (what it said is what to fix), or it
answered that it failed (its own trouble, e.g. its database out of reach). The raw gRPC text of
the first ("failed to connect to all addresses; last error: UNKNOWN: ipv4:...") helps nobody.

And two exit codes (`remit.command_exits`): a failure a later run may not meet (nothing
answered, no answer in time, the service said to retry) is a temporary one (75); the rest are
refusals (2).
"""

from collections.abc import Callable
from typing import Final, cast

import grpc

from remit.command_exits import (
    CommandRefusedError,
    CommandTemporaryFailureError,
    rpc_status_is_temporary,
)
from remit.core.errors import ErrorKind
from remit.grpcutil.errors import detail_from_rpc_error, kind_from_grpc_code

# What the service said is the whole story: the request was refused as it was.
_REFUSALS: Final = frozenset(
    {
        ErrorKind.INVALID_ARGUMENT,
        ErrorKind.NOT_FOUND,
        ErrorKind.FAILED_PRECONDITION,
        ErrorKind.ALREADY_EXISTS,
        ErrorKind.CONFLICT,
    }
)
_CREDENTIAL_REFUSALS: Final = frozenset({ErrorKind.UNAUTHENTICATED, ErrorKind.PERMISSION_DENIED})


def describe_call_failure(error: grpc.RpcError, service: str, target: str) -> str:
    """One line on why a call to `service` (the core, the vault, ...) at `target` failed."""
    # A failed call, blocking or asyncio, is also a grpc.Call: its code, details and trailers.
    call = cast(grpc.aio.AioRpcError, error)
    code = call.code()
    detail = detail_from_rpc_error(call)
    message = detail.message if detail is not None and detail.message else call.details() or ""
    if detail is None and code is grpc.StatusCode.UNAVAILABLE:
        # No remit server answered: the connection itself failed.
        return f"the {service} is not reachable at {target}; is it running?"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the {service} at {target} did not answer in time"
    kind = kind_from_grpc_code(code)
    if kind in _REFUSALS or (kind in _CREDENTIAL_REFUSALS and detail is not None):
        return message or f"the {service} refused the request ({code.name})"
    if kind in _CREDENTIAL_REFUSALS:
        # The credential check in front of every service refuses without an ErrorDetail.
        return (
            f"the {service} at {target} refused the command's internal credential "
            f"({message or code.name}); is REMIT_INTERNAL_TOKEN the platform's?"
        )
    return f"the {service} at {target} failed: {message or code.name}"


def call_failure_is_temporary(error: grpc.RpcError) -> bool:
    """Whether the same call made later may succeed: nothing answered, the answer came too
    late, or the service answered that the request may be retried (its database restarting)."""
    if rpc_status_is_temporary(error):
        return True
    detail = detail_from_rpc_error(cast(grpc.aio.AioRpcError, error))
    return detail is not None and detail.should_retry


def call_failed(
    error: grpc.RpcError,
    service: str,
    target: str,
    refusal: Callable[[str], Exception] = CommandRefusedError,
) -> Exception:
    """What an admin command raises for a failed call to `service` at `target`: a temporary
    failure when a retry later may succeed, else `refusal` (exit 2), each with the line
    `describe_call_failure` words."""
    line = describe_call_failure(error, service, target)
    if call_failure_is_temporary(error):
        return CommandTemporaryFailureError(line)
    return refusal(line)
