"""How a charge shows an attempt that ended before the network, its 3-D Secure never completed.

Stripe authenticates before it sends a payment to the network, and it has no charge for a
payment whose authentication was never completed: the merchant learns of it from the intent
alone (`payment_intent.payment_failed` with `last_payment_error.code`
`payment_intent_authentication_failure`, or the intent's own change when it moves on). remit
makes the charge earlier, when the confirmation starts the attempt (docs/radar.md), so such a
charge must end in a way that says the same: `failed`, never sent for authorization, and no
charge event of its own.

This holds for every way the attempt can end unauthenticated: the cardholder fails the
challenge, answers it after it expired (`remit.radar.authentication`), or the intent moves on
while the challenge waits (`remit.payments.abandoned_attempts`).
"""

from collections.abc import Mapping
from typing import Final

from remit.payments.charges import Charge
from remit.payments.risk import Authentication, RiskVerdict

NEVER_SENT: Final = "This payment was never sent to the card network"


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


def ended_unauthenticated(authentication: Mapping[str, object] | None) -> bool:
    """Whether an attempt with this 3-D Secure state (`Charge.authentication`) waited for a
    challenge that was never passed: if it failed, it failed before the network."""
    state = Authentication.from_json(authentication)
    return state.challenge_id is not None and not state.authenticated
