"""The longest one step at the card network can take, from the configured network timeout.

A step sends an operation and, when its outcome is unknown, settles it by looking it up
(`PaymentsService._settle`). Whatever guards such a step for its whole run (an idempotency
key's lease while a request waits on it, a worker's claim on the job that makes it) must
outlast these bounds, which move with REMIT_NETWORK_TIMEOUT_S.
"""

from remit.payments.send_budget import VAULT_MARGIN_S

# How many rounds of look-up (and send again, when the network has no record) settle an
# operation whose outcome is unknown before the step gives up as `network_unavailable`; the
# pause after the n-th round is n times SETTLE_PAUSE_S.
SETTLE_ATTEMPTS = 3
SETTLE_PAUSE_S = 0.2


def settle_worst_s(*, send_s: float, look_up_s: float) -> float:
    """The longest a send settled by look-ups can take: the first send runs out its deadline,
    then in every round the look-up answers "no record" just before its deadline and the send
    again runs out its own, followed by the round's pause. (The send's breaker opening cuts
    it short: the look-ups' answers in between are told to their own breaker, not to the
    send's, `NetworkBreakers`.)"""
    pauses = sum(SETTLE_PAUSE_S * (n + 1) for n in range(SETTLE_ATTEMPTS))
    return send_s + SETTLE_ATTEMPTS * (look_up_s + send_s) + pauses


def operation_worst_s(network_timeout_s: float) -> float:
    """A capture, void or refund at the acquirer: every call is bounded by the network
    timeout. 71.2 s at the default 10 s."""
    return settle_worst_s(send_s=network_timeout_s, look_up_s=network_timeout_s)


def authorization_worst_s(network_timeout_s: float) -> float:
    """An authorization: forwarded through the vault, which takes a moment more than the
    network timeout; and a forward the vault refuses (the card cannot be opened) is followed by
    one more look-up (`PaymentsService._authorize_or_refusal`). 89.2 s at the default 10 s, the
    longest step there is."""
    forward_s = network_timeout_s + VAULT_MARGIN_S
    return settle_worst_s(send_s=forward_s, look_up_s=network_timeout_s) + network_timeout_s
