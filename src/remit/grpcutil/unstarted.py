"""Refusals that say nothing was done: a call refused before its handler ran.

RESOURCE_EXHAUSTED alone does not say so. gRPC answers it too when a reply or its metadata
outgrows what the caller accepts, and then the server did act; a caller that must not guess
(the core sending an authorization) has to treat it as an unknown outcome and look the call
up. remit's own admission bound (`remit.grpcutil.concurrency`) refuses before anything runs,
and says so with a mark in the refusal's trailing metadata, which gRPC never sets itself. A
caller that sees the mark knows the call was not carried out and may send it again.

A server that passes on such a refusal of a call it made on its caller's behalf, having sent
nothing else on (the vault, refused by the acquirer), raises `UnstartedRefusalError`, which its
error mapping answers with the mark too.
"""

from typing import Any, Final, cast

import grpc

from remit.core.errors import ErrorKind, RemitError

MARK_KEY: Final = "remit-refused-unstarted"
MARK: Final = (MARK_KEY, "1")


def refused_unstarted(error: grpc.aio.AioRpcError) -> bool:
    """Whether `error` is a refusal marked as made before anything was done."""
    if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return False
    return any(key == MARK_KEY for key, _value in error.trailing_metadata() or ())


class UnstartedRefusalError(RemitError):
    """A refusal passed on whose call was never carried out downstream, answered with the
    mark (`marked`)."""


def unstarted_overload_refusal(service: str) -> UnstartedRefusalError:
    """The refusal of a call `service` turned away under load before carrying it out: as
    Stripe answers overload (429 `rate_limit`), with no invitation to retry at once."""
    return UnstartedRefusalError(
        message=f"The {service} is busy and did not carry out the request. Reduce the rate of "
        "your requests, backing off exponentially before retrying.",
        kind=ErrorKind.RESOURCE_EXHAUSTED,
        error_type="invalid_request_error",
        code="rate_limit",
    )


def marked(status: grpc.Status) -> grpc.Status:
    """`status` with the mark added to its trailing metadata."""
    # grpc_status's statuses are namedtuples, as grpc's own; `_replace` keeps their class.
    metadata = (*(status.trailing_metadata or ()), MARK)
    return cast(grpc.Status, cast(Any, status)._replace(trailing_metadata=metadata))
