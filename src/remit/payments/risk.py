"""Radar's decision and the 3-D Secure state of an attempt, as the payments service keeps them.

Both are stored on the charge when the attempt is created, before anything acts on them, so a
crashed attempt resumes with the same decision (and never counts or scores twice). `charge.risk`
holds the verdict; `charge.authentication` holds what the confirmation asked for
(`off_session`, `error_on_requires_action`, `request_three_d_secure`), what the network is told
of the card being kept (a setup for off-session payments, or the setup an off-session payment
cites) and, once a challenge ran, its id and result.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

ALLOW: Final = "allow"
BLOCK: Final = "block"
REVIEW: Final = "review"
REQUEST_THREE_D_SECURE: Final = "request_three_d_secure"
# The acquirer's decline code for a card that needs the cardholder to authenticate.
AUTHENTICATION_REQUIRED: Final = "authentication_required"
AUTHENTICATION_FAILURE_MESSAGE: Final = (
    "We are unable to authenticate your payment method. Please choose a different payment "
    "method and try again."
)


@dataclass(frozen=True)
class RiskVerdict:
    action: str
    risk_level: str
    risk_score: int | None = None
    rule_id: str | None = None
    reason: str | None = None
    # The explanation: top signals and the model version (shown in the review and logs).
    explanation: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "risk_level": self.risk_level,
            "risk_score": self.risk_score,
            "rule": self.rule_id,
            "reason": self.reason,
            "explanation": dict(self.explanation),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> "RiskVerdict":
        if not data:
            return NOT_ASSESSED
        score = data.get("risk_score")
        explanation = data.get("explanation")
        return cls(
            action=str(data.get("action") or ALLOW),
            risk_level=str(data.get("risk_level") or "not_assessed"),
            risk_score=score if isinstance(score, int) else None,
            rule_id=_text(data.get("rule")),
            reason=_text(data.get("reason")),
            explanation=explanation if isinstance(explanation, dict) else {},
        )


NOT_ASSESSED: Final = RiskVerdict(action=ALLOW, risk_level="not_assessed")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Authentication:
    """The 3-D Secure side of one attempt."""

    off_session: bool = False
    error_on_requires_action: bool = False
    # payment_method_options.card.request_three_d_secure: "any" or "challenge" force one.
    requested: str | None = None
    challenge_id: str | None = None
    # "authenticated" or "failed" once the cardholder answered.
    result: str | None = None
    # The cardholder, present, agrees to later off-session payments with the card (the intent's
    # setup_future_usage is off_session): an approval records its network transaction id on
    # the payment method.
    setup_off_session: bool = False
    # For an off-session payment: the network transaction id of the payment that set its card
    # up for off-session payments, which the network is given (issuers may then waive
    # authentication).
    initial_network_transaction_id: str | None = None
    # The confirmation's client SDK handles a challenge in place (Stripe's use_stripe_sdk).
    use_stripe_sdk: bool = False

    @property
    def authenticated(self) -> bool:
        return self.result == "authenticated"

    @property
    def may_challenge(self) -> bool:
        """A challenge needs the cardholder; off-session payments and error_on_requires_action
        fail instead of waiting for one."""
        return not self.off_session and not self.error_on_requires_action

    def as_json(self) -> dict[str, object]:
        return {
            "off_session": self.off_session,
            "error_on_requires_action": self.error_on_requires_action,
            "requested": self.requested,
            "challenge_id": self.challenge_id,
            "result": self.result,
            "setup_off_session": self.setup_off_session,
            "initial_network_transaction_id": self.initial_network_transaction_id,
            "use_stripe_sdk": self.use_stripe_sdk,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object] | None) -> "Authentication":
        if not data:
            return cls()
        return cls(
            off_session=data.get("off_session") is True,
            error_on_requires_action=data.get("error_on_requires_action") is True,
            requested=_text(data.get("requested")),
            challenge_id=_text(data.get("challenge_id")),
            result=_text(data.get("result")),
            setup_off_session=data.get("setup_off_session") is True,
            initial_network_transaction_id=_text(data.get("initial_network_transaction_id")),
            use_stripe_sdk=data.get("use_stripe_sdk") is True,
        )


def network_reference(charge_id: str, authentication: Authentication) -> str:
    """The network performs each reference at most once, and a card that needed
    authentication has already been answered for the charge id: the authenticated
    authorization is a new operation with a reference of its own."""
    return f"{charge_id}_3ds" if authentication.authenticated else charge_id


def needs_authentication(
    verdict: RiskVerdict, authentication: Authentication, result: Mapping[str, object]
) -> bool:
    """Whether this attempt now waits for (or, without a cardholder, fails for want of)
    3-D Secure: Radar or the merchant asked for it, or the issuer declined without it."""
    if authentication.authenticated:
        return False
    if result.get("authentication_requested"):
        return True
    return not result.get("approved") and result.get("decline_code") == AUTHENTICATION_REQUIRED


def stand_in_result(
    verdict: RiskVerdict, authentication: Authentication
) -> dict[str, object] | None:
    """The answer recorded instead of asking the network, when the network must not be asked:
    Radar blocked the attempt, or authentication comes first."""
    if verdict.action == BLOCK:
        return {"approved": False, "blocked": True, "network_status": "not_sent_to_network"}
    wants_challenge = verdict.action == REQUEST_THREE_D_SECURE or authentication.requested in (
        "any",
        "challenge",
    )
    if wants_challenge and not authentication.authenticated:
        return {"approved": False, "authentication_requested": True}
    return None


# Declines the network gives before any issuer sees the payment, by code, when it reports them
# so (`not_sent_to_network`): Stripe's outcome for such a refusal is `invalid`, never an
# issuer's decline. The acquirer checks a card number's Luhn digit before it sends anything on
# (`remit.acquirer.domain.assess_card`); an `incorrect_number` an issuer gives
# (`declined_by_network`) stays `issuer_declined`.
_REFUSED_BEFORE_THE_NETWORK: Final = frozenset({"incorrect_number"})

# Declines the network gives before any issuer sees the payment because it judged the payment
# too risky, by decline code, when it reports them so (`not_sent_to_network`): the acquirer's
# refusal of Stripe's "always blocked" Radar test card, 4100000000000019, when it comes as a
# raw number (with its test id remit's Radar blocks it first). Stripe documents that card as
# risk level `highest`, always blocked, so the outcome is Stripe's block of the highest risk
# level: `blocked` / `highest_risk_level`. A `fraudulent` decline an issuer gives
# (`declined_by_network`) stays `issuer_declined`.
_BLOCKED_BEFORE_THE_NETWORK: Final = frozenset({"fraudulent"})

_SELLER_MESSAGES: Final = {
    "authorized": "Payment complete.",
    "manual_review": "Radar placed this payment in your manual review queue.",
    "blocked_rule": "A Radar rule of your account blocked this payment.",
    "blocked_risk": "Radar blocked this payment as too risky.",
    "blocked_by_network": "The acquirer blocked this payment as too risky; it was not sent to "
    "the card network.",
    "issuer_declined": "The bank did not return any further details with this decline.",
    "invalid": "This payment was not sent to the card network: its card can no longer be used.",
    "incorrect_number": "This payment was not sent to the card network: its card number is "
    "incorrect.",
    "unauthenticated": "This payment was not sent to the card network: it needed 3-D Secure "
    "authentication, which could not be asked of the cardholder for this payment.",
}


def outcome_json(verdict: RiskVerdict, result: Mapping[str, object]) -> dict[str, object]:
    """Stripe's `charge.outcome` from Radar's verdict and the network's answer."""
    base: dict[str, object] = {
        "risk_level": verdict.risk_level,
        "risk_score": verdict.risk_score,
        "rule": None,
    }
    if result.get("blocked"):
        by_rule = verdict.rule_id is not None
        return base | {
            "type": "blocked",
            "network_status": "not_sent_to_network",
            "reason": "rule" if by_rule else verdict.reason or "highest_risk_level",
            "rule": verdict.rule_id,
            "seller_message": _SELLER_MESSAGES["blocked_rule" if by_rule else "blocked_risk"],
        }
    if result.get("invalid"):
        return base | {
            "type": "invalid",
            "network_status": "not_sent_to_network",
            "reason": None,
            "seller_message": _SELLER_MESSAGES["invalid"],
        }
    if result.get("authentication_requested") and not result.get("approved"):
        # 3-D Secure was to come first (`stand_in_result`) and no challenge was possible (off
        # session, error_on_requires_action): the issuer never saw the payment, so it is not
        # its decline. `invalid`, as for every other attempt remit never sent for authorization.
        return base | {
            "type": "invalid",
            "network_status": "not_sent_to_network",
            "reason": None,
            "seller_message": _SELLER_MESSAGES["unauthenticated"],
        }
    code = _text(result.get("code"))
    not_sent = not result.get("approved") and result.get("network_status") == "not_sent_to_network"
    if not_sent and _text(result.get("decline_code")) in _BLOCKED_BEFORE_THE_NETWORK:
        # The acquirer judged the payment of the highest risk level, which Radar's own level
        # (it let the payment go on) would contradict; so would its score, unless Radar too
        # put the payment at the highest level.
        highest = verdict.risk_level == "highest"
        return base | {
            "type": "blocked",
            "network_status": "not_sent_to_network",
            "reason": "highest_risk_level",
            "risk_level": "highest",
            "risk_score": verdict.risk_score if highest else None,
            "seller_message": _SELLER_MESSAGES["blocked_by_network"],
        }
    if code in _REFUSED_BEFORE_THE_NETWORK and not_sent:
        return base | {
            "type": "invalid",
            "network_status": "not_sent_to_network",
            "reason": None,
            "seller_message": _SELLER_MESSAGES[code],
        }
    if result.get("approved"):
        review = verdict.action == REVIEW
        # Authorized by an allow rule or placed in review by a review rule: Stripe gives the
        # reason `rule` for either, as for a block by a rule.
        by_rule = verdict.action in (REVIEW, ALLOW) and verdict.rule_id is not None
        return base | {
            "type": "manual_review" if review else "authorized",
            "network_status": "approved_by_network",
            "reason": "rule" if by_rule else None,
            "rule": verdict.rule_id if by_rule else None,
            "seller_message": _SELLER_MESSAGES["manual_review" if review else "authorized"],
        }
    return base | {
        "type": "issuer_declined",
        "network_status": _text(result.get("network_status")) or "declined_by_network",
        "reason": _text(result.get("decline_code")) or _text(result.get("code")),
        "seller_message": _SELLER_MESSAGES["issuer_declined"],
    }
