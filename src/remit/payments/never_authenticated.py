"""How a charge shows an attempt that stopped at 3-D Secure, never sent for authorization.

Stripe authenticates before it sends a payment to the network, and it has no charge for a
payment that never got past authentication: the merchant learns of it from the intent alone
(`payment_intent.payment_failed` with `last_payment_error.code`
`payment_intent_authentication_failure`, or the intent's own change when it moves on). remit
makes the charge earlier, when the confirmation starts the attempt (docs/radar.md), so such a
charge must end in a way that says the same: `failed`, never sent for authorization, and no
charge event of its own (the rule for `charge.failed` is in `remit.payments.events`).

This holds for every way the attempt can stop there: the cardholder fails the challenge, or
answers it after it expired, or passes it with a card that can no longer pay
(`remit.radar.authentication`); the intent moves on while the challenge waits, or before it
confirms an authenticated attempt (`remit.payments.abandoned_attempts`).
"""

from typing import Final

from remit.payments.charges import Charge, ChargeStatus
from remit.payments.risk import RiskVerdict

NEVER_SENT: Final = "This payment was never sent to the card network"
# The charge's failure_code for such an attempt: the PaymentIntent's own error codes, which no
# answer of the network or of Radar carries. Not authenticated: the challenge failed, expired,
# or was left waiting; authenticated: a manually confirmed intent moved on before confirming,
# or the card was detached (or saved to another customer) while the cardholder answered.
NOT_AUTHENTICATED: Final = "payment_intent_authentication_failure"
AUTHENTICATED_NOT_CONFIRMED: Final = "payment_intent_payment_attempt_failed"
_STOPPED_AT_AUTHENTICATION: Final = frozenset({NOT_AUTHENTICATED, AUTHENTICATED_NOT_CONFIRMED})


def never_sent_outcome(charge: Charge, why: str) -> dict[str, object]:
    """Stripe's `outcome` for the attempt: `invalid` and `not_sent_to_network`, since it was
    never sent for authorization. Not `blocked`, which would say that Radar stopped it, and not
    `issuer_declined`: the issuer's challenge is not its answer to an authorization. The risk
    level and score stay Radar's. `why` ends the seller message."""
    verdict = RiskVerdict.from_json(charge.risk)
    return {
        "type": "invalid",
        "network_status": "not_sent_to_network",
        "reason": None,
        "risk_level": verdict.risk_level,
        "risk_score": verdict.risk_score,
        "rule": None,
        "seller_message": f"{NEVER_SENT}: {why}",
    }


def stopped_at_authentication(charge: Charge) -> bool:
    """Whether `charge` failed as an attempt that never got past 3-D Secure (one Stripe has no
    charge for), rather than one the network, Radar or the vault refused."""
    return charge.status is ChargeStatus.FAILED and charge.failure_code in (
        _STOPPED_AT_AUTHENTICATION
    )
