"""Whether a call being served has the time a send to the acquirer needs, for both processes
that send there: the core (captures, voids, refunds, and authorizations through the vault) and
the vault (the authorization it forwards).

A send started with less time than the acquirer is allowed could be cut while the acquirer is
at work, its answer lost (and at the vault, the card's CVC, spent before the send). Without that
time nothing is sent, and the caller is told so, to retry.

The vault's refusal is UNAVAILABLE, to be retried. That status alone is what the core also gets
when a forward was cut off or the acquirer was out of reach, and reads as an outcome unknown,
to be looked up at the acquirer. `NOT_SENT_CODE` marks the refusal as a forward that went
nowhere: no other UNAVAILABLE the vault passes on carries a code (the acquirer's own becomes
the vault's own message without one, `remit.vault.forwarding`), so the mark cannot be misread.
"""

from __future__ import annotations

from typing import Final

import grpc

from remit.config import network_timeout_s
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error

NOT_SENT_CODE: Final = "deadline_too_near_to_send"
# What the core's call to the vault for a forward is allowed beyond the vault's own call to the
# acquirer, which the network timeout bounds: a moment more to decrypt and to answer
# (`remit.payments.send_budget`). The vault's bound on how long a forward may still commit counts
# it too (`remit.vault.forwards_in_flight`).
VAULT_MARGIN_S: Final = 2.0


def acquirer_call_needs_s() -> float:
    """The time a call to the acquirer is allowed: a capture, void or refund of the core's, or
    the authorization the vault forwards."""
    return network_timeout_s()


def not_sent_for_lack_of_time(what: str) -> RemitError:
    """The refusal of a send for which the call being served has too little time left."""
    return RemitError(
        message=f"{what} was not sent to the card network: the caller's deadline leaves less "
        "time than a send needs. Nothing was sent; retry.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        code=NOT_SENT_CODE,
        should_retry=True,
    )


def refused_as_not_sent(error: grpc.aio.AioRpcError) -> bool:
    """Whether a failed call is `not_sent_for_lack_of_time`: nothing went to the network."""
    if error.code() is not grpc.StatusCode.UNAVAILABLE:
        return False
    detail = detail_from_rpc_error(error)
    return detail is not None and detail.code == NOT_SENT_CODE
