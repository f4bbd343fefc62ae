"""A forward of an authorization that may still be at the acquirer, for both processes it
concerns: the vault, which says so, and the core, which reads it as an outcome unknown.

The vault refuses to forward a card it will not open any more (deleted, or sealed under a key
no longer allowed), and the core, told so, looks the reference up at the acquirer: nothing
there, the attempt fails as never sent (`remit.payments.network.unusable_card_answer`). That
holds only if no earlier forward of the reference can still commit at the acquirer: one whose
answer was lost (the vault's call to the acquirer cut off at its deadline, the acquirer's
statement still running) may commit after the look-up, an authorization no ledger entry
records. So while a forward of the reference the vault sent may still be at the acquirer, the
vault answers with `forward_in_flight` instead: the core takes it as an unknown outcome and
looks the reference up again later, as it does for any other. Once no such forward can still
be running, the refusal is conclusive, and the attempt fails as before.

UNAVAILABLE, to be retried, as a forward cut off is; `IN_FLIGHT_CODE` marks it, so that the
core does not count it against the network's health (its breaker): the network is not at fault.
"""

from __future__ import annotations

from typing import Final

import grpc

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error

IN_FLIGHT_CODE: Final = "forward_outcome_unknown"


def forward_in_flight(reference: str) -> RemitError:
    """The vault's answer to a forward of a card it will not open, while an earlier forward of
    `reference` may still be at the acquirer."""
    return RemitError(
        message=f"The authorization {reference} was forwarded to the card network earlier, and "
        "its outcome is not known yet; retry shortly.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        code=IN_FLIGHT_CODE,
        should_retry=True,
    )


def refused_as_in_flight(error: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call is `forward_in_flight`."""
    if error.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    detail = detail_from_rpc_error(error)
    return detail is not None and detail.code == IN_FLIGHT_CODE
