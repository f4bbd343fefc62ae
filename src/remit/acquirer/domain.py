"""The simulated acquirer's records and rules: authorizations, operations, and their transitions.

Everything here is pure. The service supplies ids, times and random network identifiers, and
persists what these functions decide.
"""

from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import Enum
from typing import Final, assert_never

from remit.acquirer.cards import (
    AUTHENTICATION_REQUIRED,
    EXPIRED_CARD,
    INCORRECT_CVC,
    INCORRECT_NUMBER,
    AddressCheck,
    Brand,
    CardProfile,
    Decline,
    Funding,
    Risk,
    brand_of,
    luhn_valid,
)
from remit.core.money import divide_round_half_even
from remit.core.secrets import Secret

# The interchange-like fee withheld on every settled capture: 1.50% of the captured amount in
# its own minor units, rounded half to even (so 1 cent of fee per 66.67 cents is never biased
# up or down over many payments). Refunds settle with no fee: like most acquirers, this one
# does not give the interchange back.
CAPTURE_FEE_BPS: Final = 150
BPS_DENOMINATOR: Final = 10_000


class OperationKind(Enum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class AuthorizationState(Enum):
    # Some amount can still be captured.
    OPEN = "open"
    # Captured in full, or the uncaptured remainder was released by a final capture.
    CLOSED = "closed"
    # Released by a void; whatever was captured before stays captured.
    VOIDED = "voided"


class CheckResult(Enum):
    PASS = "pass"  # noqa: S105 (a check outcome, not a password)
    FAIL = "fail"
    UNAVAILABLE = "unavailable"
    UNCHECKED = "unchecked"


class NetworkStatus(Enum):
    APPROVED_BY_NETWORK = "approved_by_network"
    DECLINED_BY_NETWORK = "declined_by_network"
    NOT_SENT_TO_NETWORK = "not_sent_to_network"


class SettlementKind(Enum):
    CAPTURE = "capture"
    REFUND = "refund"


@dataclass(frozen=True)
class CardSummary:
    """All the acquirer keeps of a card: never the full number, never the CVC."""

    brand: Brand
    funding: Funding
    bin: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class AuthorizationRequest:
    reference: str
    card_number: Secret[str]
    exp_month: int
    exp_year: int
    cvc: Secret[str] | None
    amount_minor: int
    currency: str
    capture: bool
    merchant_id: str
    billing_line1: str | None
    billing_postal_code: str | None
    three_d_secure_authenticated: bool
    # The networks' stored-credential fields (see the AuthorizeRequest message): the merchant
    # initiates the payment with the cardholder away; or the cardholder, present, agrees to
    # such payments; and the setup an off-session payment relies on.
    off_session: bool = False
    setup_off_session: bool = False
    initial_network_transaction_id: str | None = None

    def card_summary(self, funding: Funding) -> CardSummary:
        number = self.card_number.reveal()
        return CardSummary(
            brand=brand_of(number),
            funding=funding,
            bin=number[:6],
            last4=number[-4:],
            exp_month=self.exp_month,
            exp_year=self.exp_year,
        )

    def fingerprint(self) -> dict[str, object]:
        """The parameters a retry must repeat. The CVC is left out on purpose: the vault keeps
        it only until the first authorization, so an honest retry may arrive without it."""
        number = self.card_number.reveal()
        fingerprint: dict[str, object] = {
            "kind": OperationKind.AUTHORIZE.value,
            "card_bin": number[:6],
            "card_last4": number[-4:],
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "amount": self.amount_minor,
            "currency": self.currency,
            "capture": self.capture,
            "merchant_id": self.merchant_id,
            "three_d_secure_authenticated": self.three_d_secure_authenticated,
        }
        # Only when set: a retry of an operation recorded before these fields existed matches.
        if self.off_session:
            fingerprint["off_session"] = True
        if self.setup_off_session:
            fingerprint["setup_off_session"] = True
        if self.initial_network_transaction_id is not None:
            fingerprint["initial_network_transaction_id"] = self.initial_network_transaction_id
        return fingerprint

    def cites_initial_setup(self, profile: CardProfile) -> bool:
        """Whether the issuer looks up the setup this request cites: only an off-session
        payment cites one, and only an issuer that exempts such payments needs it."""
        return (
            self.off_session
            and self.initial_network_transaction_id is not None
            and profile.exempts_off_session_after_authenticated_setup
        )


@dataclass(frozen=True)
class CardAssessment:
    """What the network and issuer say about a card before any money is held."""

    decline: Decline | None
    cvc_check: CheckResult
    address_line1_check: CheckResult
    address_postal_code_check: CheckResult
    risk: Risk

    @property
    def approved(self) -> bool:
        return self.decline is None

    @property
    def network_status(self) -> NetworkStatus:
        if self.decline is None:
            return NetworkStatus.APPROVED_BY_NETWORK
        if self.decline.sent_to_network:
            return NetworkStatus.DECLINED_BY_NETWORK
        return NetworkStatus.NOT_SENT_TO_NETWORK


def _address_checks(
    check: AddressCheck, line1_given: bool, postal_code_given: bool
) -> tuple[CheckResult, CheckResult]:
    line1 = postal = CheckResult.PASS
    if check in (AddressCheck.LINE1_FAILS, AddressCheck.BOTH_FAIL):
        line1 = CheckResult.FAIL
    if check in (AddressCheck.POSTAL_CODE_FAILS, AddressCheck.BOTH_FAIL):
        postal = CheckResult.FAIL
    if check is AddressCheck.UNAVAILABLE:
        line1 = postal = CheckResult.UNAVAILABLE
    return (
        line1 if line1_given else CheckResult.UNCHECKED,
        postal if postal_code_given else CheckResult.UNCHECKED,
    )


def is_expired(exp_month: int, exp_year: int, today: date) -> bool:
    """A card is good through the last day of its expiry month."""
    return (exp_year, exp_month) < (today.year, today.month)


def _exempt_off_session(
    request: AuthorizationRequest, profile: CardProfile, initial_setup: "Authorization | None"
) -> bool:
    """An off-session payment needs no authentication from an issuer that exempts them once
    the card was set up with it, when it cites that authenticated setup."""
    return (
        profile.exempts_off_session_after_authenticated_setup
        and request.off_session
        and initial_setup is not None
        and initial_setup.set_up_off_session_for(request)
    )


def assess_card(
    request: AuthorizationRequest,
    profile: CardProfile,
    today: date,
    initial_setup: "Authorization | None" = None,
) -> CardAssessment:
    """`initial_setup`: the authorization the request cites by its network transaction id,
    if any (`AuthorizationRequest.cites_initial_setup`)."""
    number = request.card_number.reveal()
    if not luhn_valid(number):
        unchecked = CheckResult.UNCHECKED
        return CardAssessment(INCORRECT_NUMBER, unchecked, unchecked, unchecked, Risk.NORMAL)
    cvc_given = request.cvc is not None
    cvc_fails = profile.decline == INCORRECT_CVC or profile.cvc_check_fails
    if not cvc_given:
        cvc_check = CheckResult.UNCHECKED
    else:
        cvc_check = CheckResult.FAIL if cvc_fails else CheckResult.PASS
    line1, postal = _address_checks(
        profile.address_check,
        request.billing_line1 is not None,
        request.billing_postal_code is not None,
    )

    decline: Decline | None
    if is_expired(request.exp_month, request.exp_year, today):
        decline = EXPIRED_CARD
    elif (
        profile.requires_authentication
        and not request.three_d_secure_authenticated
        and not _exempt_off_session(request, profile, initial_setup)
    ):
        # The issuer asks for authentication before it looks at anything else.
        decline = AUTHENTICATION_REQUIRED
    elif profile.decline is not None:
        decline = profile.decline
    elif profile.cvc_check_fails and cvc_given:
        decline = INCORRECT_CVC
    else:
        decline = None
    if decline is not None and not decline.sent_to_network:
        cvc_check = line1 = postal = CheckResult.UNCHECKED
    return CardAssessment(decline, cvc_check, line1, postal, profile.risk)


@dataclass(frozen=True)
class AuthorizationResult:
    """The network's answer to an authorization, as stored and as replayed."""

    approved: bool
    authorization_id: str | None
    operation_id: str
    network_status: NetworkStatus
    code: str | None
    decline_code: str | None
    message: str | None
    cvc_check: CheckResult
    address_line1_check: CheckResult
    address_postal_code_check: CheckResult
    risk: Risk
    captured: bool
    network_transaction_id: str | None
    authorization_code: str | None
    bypass_pending: bool
    dispute_expected: bool

    def to_json(self) -> dict[str, object]:
        return {
            "approved": self.approved,
            "authorization_id": self.authorization_id,
            "operation_id": self.operation_id,
            "network_status": self.network_status.value,
            "code": self.code,
            "decline_code": self.decline_code,
            "message": self.message,
            "cvc_check": self.cvc_check.value,
            "address_line1_check": self.address_line1_check.value,
            "address_postal_code_check": self.address_postal_code_check.value,
            "risk": self.risk.value,
            "captured": self.captured,
            "network_transaction_id": self.network_transaction_id,
            "authorization_code": self.authorization_code,
            "bypass_pending": self.bypass_pending,
            "dispute_expected": self.dispute_expected,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "AuthorizationResult":
        def text(name: str) -> str | None:
            value = data[name]
            return None if value is None else str(value)

        return cls(
            approved=bool(data["approved"]),
            authorization_id=text("authorization_id"),
            operation_id=str(data["operation_id"]),
            network_status=NetworkStatus(data["network_status"]),
            code=text("code"),
            decline_code=text("decline_code"),
            message=text("message"),
            cvc_check=CheckResult(data["cvc_check"]),
            address_line1_check=CheckResult(data["address_line1_check"]),
            address_postal_code_check=CheckResult(data["address_postal_code_check"]),
            risk=Risk(data["risk"]),
            captured=bool(data["captured"]),
            network_transaction_id=text("network_transaction_id"),
            authorization_code=text("authorization_code"),
            bypass_pending=bool(data["bypass_pending"]),
            dispute_expected=bool(data["dispute_expected"]),
        )


@dataclass(frozen=True)
class Authorization:
    """Money held on a card, and how much of it was captured, released and refunded."""

    id: str
    merchant_id: str
    currency: str
    authorized_minor: int
    captured_minor: int
    refunded_minor: int
    state: AuthorizationState
    card: CardSummary
    created_at: datetime
    updated_at: datetime
    # The network's id of this authorization (None for those recorded before it was kept), the
    # cardholder's 3-D Secure, and whether the cardholder agreed with it to later off-session
    # payments: what an off-session payment citing it is checked against.
    network_transaction_id: str | None = None
    three_d_secure_authenticated: bool = False
    setup_off_session: bool = False

    def set_up_off_session_for(self, request: AuthorizationRequest) -> bool:
        """Whether this is an authenticated setup for off-session payments that `request` may
        rely on: made by the same merchant, with the same card. The acquirer keeps no card
        number, so the card is told by what it keeps: its BIN and last four digits."""
        number = request.card_number.reveal()
        return (
            self.setup_off_session
            and self.three_d_secure_authenticated
            and self.merchant_id == request.merchant_id
            and (self.card.bin, self.card.last4) == (number[:6], number[-4:])
        )

    @property
    def capturable_minor(self) -> int:
        if self.state is not AuthorizationState.OPEN:
            return 0
        return self.authorized_minor - self.captured_minor

    @property
    def released_minor(self) -> int:
        """What went back to the cardholder uncaptured: nothing while the authorization is
        open; once a final capture closed it or a void released it, all it did not capture.
        Derived rather than stored, so authorized = captured + released holds by construction
        for every closed or voided authorization; the operation that released it records the
        amount too (`Operation.released_minor`)."""
        if self.state is AuthorizationState.OPEN:
            return 0
        return self.authorized_minor - self.captured_minor

    @property
    def refundable_minor(self) -> int:
        return self.captured_minor - self.refunded_minor


@dataclass(frozen=True)
class Operation:
    """One call's recorded effect, found again by its reference."""

    id: str
    reference: str
    kind: OperationKind
    authorization_id: str | None
    amount_minor: int
    currency: str
    merchant_id: str
    approved: bool
    code: str | None
    message: str | None
    created_at: datetime
    # The parameters that defined the call; a retry with the same reference must match them.
    request: dict[str, object]
    authorization_result: AuthorizationResult | None
    fee_minor: int
    # When the money moved for settlement; None for what never settles (declines, voids,
    # authorizations without capture).
    settled_at: datetime | None
    # What the operation released of its authorization back to the cardholder: the uncaptured
    # remainder a final partial capture leaves, what a void found still capturable; 0 for
    # everything else. Recorded with the operation, in the transaction that closes the
    # authorization, so the release is never recorded apart from the capture or void.
    released_minor: int = 0

    @property
    def settlement_kind(self) -> SettlementKind | None:
        if self.settled_at is None:
            return None
        if self.kind is OperationKind.REFUND:
            return SettlementKind.REFUND
        return SettlementKind.CAPTURE


@dataclass(frozen=True)
class Refusal:
    """Why a capture, void or refund did not happen; recorded like any other outcome."""

    code: str
    message: str


@dataclass(frozen=True)
class Transition:
    """A capture, void or refund decision: the authorization afterwards, the amount moved and
    the amount released back to the cardholder, or the refusal (and the authorization
    unchanged)."""

    authorization: Authorization
    amount_minor: int
    refusal: Refusal | None
    released_minor: int = 0


def capture_fee_minor(amount_minor: int) -> int:
    return divide_round_half_even(amount_minor * CAPTURE_FEE_BPS, BPS_DENOMINATOR)


def _refused(
    authorization: Authorization, amount_minor: int, code: str, message: str
) -> Transition:
    return Transition(authorization, amount_minor, Refusal(code, message))


def capture(
    authorization: Authorization, amount_minor: int, *, keep_open: bool, now: datetime
) -> Transition:
    match authorization.state:
        case AuthorizationState.VOIDED:
            return _refused(
                authorization,
                amount_minor,
                "authorization_voided",
                "This authorization was voided and cannot be captured.",
            )
        case AuthorizationState.CLOSED:
            return _refused(
                authorization,
                amount_minor,
                "charge_already_captured",
                "This authorization has already been captured.",
            )
        case AuthorizationState.OPEN:
            pass
        case _:
            assert_never(authorization.state)
    if amount_minor > authorization.capturable_minor:
        return _refused(
            authorization,
            amount_minor,
            "amount_too_large",
            f"The capture amount ({amount_minor}) is more than the amount still capturable "
            f"({authorization.capturable_minor}).",
        )
    captured = authorization.captured_minor + amount_minor
    stays_open = keep_open and captured < authorization.authorized_minor
    after = replace(
        authorization,
        captured_minor=captured,
        state=AuthorizationState.OPEN if stays_open else AuthorizationState.CLOSED,
        updated_at=now,
    )
    # A final capture of less than was held releases the rest: nothing is capturable after it.
    return Transition(after, amount_minor, None, released_minor=after.released_minor)


def void(authorization: Authorization, *, now: datetime) -> Transition:
    """Releases what is still capturable; a partially captured (multicapture) authorization
    keeps what it captured."""
    match authorization.state:
        case AuthorizationState.VOIDED:
            return _refused(
                authorization,
                0,
                "authorization_voided",
                "This authorization has already been voided.",
            )
        case AuthorizationState.CLOSED:
            return _refused(
                authorization,
                0,
                "charge_already_captured",
                "This authorization was already captured; refund it instead.",
            )
        case AuthorizationState.OPEN:
            pass
        case _:
            assert_never(authorization.state)
    released = authorization.capturable_minor
    after = replace(authorization, state=AuthorizationState.VOIDED, updated_at=now)
    return Transition(after, released, None, released_minor=released)


def refund(authorization: Authorization, amount_minor: int, *, now: datetime) -> Transition:
    if authorization.captured_minor == 0:
        return _refused(
            authorization,
            amount_minor,
            "charge_not_captured",
            "Nothing has been captured on this authorization.",
        )
    if authorization.refundable_minor == 0:
        return _refused(
            authorization,
            amount_minor,
            "charge_already_refunded",
            "This authorization has already been refunded in full.",
        )
    if amount_minor > authorization.refundable_minor:
        return _refused(
            authorization,
            amount_minor,
            "amount_too_large",
            f"The refund amount ({amount_minor}) is more than the amount still refundable "
            f"({authorization.refundable_minor}).",
        )
    after = replace(
        authorization,
        refunded_minor=authorization.refunded_minor + amount_minor,
        updated_at=now,
    )
    return Transition(after, amount_minor, None)


@dataclass(frozen=True)
class SettlementRow:
    kind: SettlementKind
    reference: str
    authorization_id: str
    operation_id: str
    amount_minor: int
    currency: str
    fee_minor: int
    settled_at: datetime
    merchant_id: str
    # A capture's release of its authorization's uncaptured remainder (0 for refunds).
    released_minor: int = 0


def settlement_row(operation: Operation) -> SettlementRow:
    kind = operation.settlement_kind
    if kind is None or operation.settled_at is None or operation.authorization_id is None:
        raise ValueError(f"operation {operation.id} did not settle")
    return SettlementRow(
        kind=kind,
        reference=operation.reference,
        authorization_id=operation.authorization_id,
        operation_id=operation.id,
        amount_minor=operation.amount_minor,
        currency=operation.currency,
        fee_minor=operation.fee_minor,
        settled_at=operation.settled_at,
        merchant_id=operation.merchant_id,
        released_minor=operation.released_minor,
    )
