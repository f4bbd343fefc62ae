"""How much of a call's time a step at the card network needs, and so how long the REST
facade gives the core for a call.

A send (an authorization through the vault, a capture, a void, a refund) is started only with
the time the network is allowed to take (`network_timeout_s`) still ahead: one given less
could be cut while the network is at work, its answer lost (and at the vault, the card's CVC,
spent before the send). Without that time the request is answered UNAVAILABLE, to be retried,
before anything is sent. A look-up changes nothing at the network, so it runs in whatever time
is left, down to `LOOKUP_NEEDS_S`. The vault refuses a forward by the same measure
(`remit.grpcutil.send_time`).
"""

from __future__ import annotations

from typing import Final

from remit.grpcutil.deadlines import ANSWER_MARGIN_S
from remit.grpcutil.send_time import VAULT_MARGIN_S as VAULT_MARGIN_S
from remit.grpcutil.send_time import acquirer_call_needs_s

# Below this a look-up is not worth starting: it would time out before the network answered.
LOOKUP_NEEDS_S: Final = 1.0
# What the core does for a payment before it sends it (the key, the risk checks, the attempt's
# rows), with room to spare; the REST facade's deadline leaves this much before a send.
BEFORE_SEND_S: Final = 5.0
# The REST facade's deadline for a call to the core, when the network timeout asks no more.
MIN_CORE_CALL_S: Final = 30.0


def authorization_needs_s() -> float:
    """The time an authorization through the vault is allowed: the vault call's timeout."""
    return acquirer_call_needs_s() + VAULT_MARGIN_S


def operation_needs_s() -> float:
    """The time a capture, void or refund at the acquirer is allowed."""
    return acquirer_call_needs_s()


def core_call_timeout_s() -> float:
    """The REST facade's deadline for a call to the core: long enough for the core's work
    before a send, the longest send, and the core's answer after it. The core stops its
    look-ups after an unknown outcome when this deadline is near, and the request waits at its
    recovery point for a retry or the completer, so nothing the core does outlasts it."""
    return max(MIN_CORE_CALL_S, BEFORE_SEND_S + authorization_needs_s() + ANSWER_MARGIN_S)
