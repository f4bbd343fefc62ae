"""A failed call from an admin command to one of remit's services, in words an operator acts on.

Three cases read differently: the service could not be reached (nothing answered: is it
running, is the address right?), it refused the request (what it said is what to fix), or it
answered that it failed (its own trouble, e.g. its database out of reach). The raw gRPC text of
the first ("failed to connect to all addresses; last error: UNKNOWN: ipv4:...") helps nobody.
"""

from typing import Final, cast

import grpc

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
