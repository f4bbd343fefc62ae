"""The card network as the payments service sees it: authorize through the vault, and capture,
void, refund and look up operations at the acquirer.

Every call carries a reference chosen by remit (the charge or refund id), so the acquirer
performs each operation at most once. When a call's outcome is unknown (a timeout, a lost
response), the caller settles it with `lookup_*` by that reference; it never guesses. A look-up
says which operation it expects there, and refuses a record of another
(`lookup_expectations`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Protocol, TypeVar

import grpc

from remit.config import network_timeout_s
from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import enum_wire_values
from remit.core.logging import mask_sensitive
from remit.grpcutil.deadlines import bounded_timeout, has_time_for
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.forward_in_flight import refused_as_in_flight
from remit.grpcutil.protoconv import from_timestamp
from remit.grpcutil.send_time import refused_as_not_sent
from remit.grpcutil.unstarted import refused_unstarted
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.lookup_expectations import ExpectedOperation, refuse_unless_expected
from remit.payments.send_budget import (
    LOOKUP_NEEDS_S,
    authorization_needs_s,
    operation_needs_s,
)
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")
# Where a charge's stored network answer (`Charge.network_result`) keeps the fee the network
# withheld from its capture: the authorization's answer puts it there when it captured at once,
# a separate capture's answer replaces it (see `with_capture_fee`).
NETWORK_FEE_KEY = "network_fee"
# In a charge's stored answer: the cardholder will dispute the payment once it is captured
# (test card 4000000000000259); the capture stages the dispute (`remit.payments.expected_disputes`).
DISPUTE_EXPECTED_KEY = "dispute_expected"
# Where it keeps when the network made the authorization (`remit.payments.authorization_age`).
AUTHORIZED_AT_KEY = "authorized_at"
ACQUIRER_DESTINATION = "acquirer"
_UNKNOWN_OUTCOME_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_NETWORK_STATUS = enum_wire_values(common_pb2.NetworkStatus.DESCRIPTOR)
_CHECK = enum_wire_values(common_pb2.CardCheckResult.DESCRIPTOR)
_RISK = enum_wire_values(common_pb2.RiskLevel.DESCRIPTOR)


# The vault's refusals to open a card for a forward, by the code (and parameter) it gives them:
# the token was deleted or belongs to another account (vault `_no_such_token`), or the card is
# sealed under a key version no longer allowed to decrypt (vault `crypto.retired_key`), or under
# one missing from the vault's key ring that an operator declared lost (vault `lost_keys`). Each
# comes back the same on every retry, so the attempt fails (see `unusable_card_answer`); the
# vault gives them only once no forward of the reference it sent can still commit at the
# acquirer (`remit.grpcutil.forward_in_flight`). They are told apart by code, not by status:
# an error of the acquirer passed on through the vault can carry the same status
# (`reference_reused` is FAILED_PRECONDITION too) and says nothing about the card.
_NO_SUCH_TOKEN = ("resource_missing", "vault_token")
_KEY_RETIRED = "vault_key_retired"


def vault_will_not_open_card(error: RemitError) -> bool:
    return (error.code, error.param) == _NO_SUCH_TOKEN or error.code == _KEY_RETIRED


# The vault's refusal to open a card for a forward when the key version its data key is wrapped
# under is missing from the vault's key ring (vault `_unforwardable`), found before anything was
# sent: a vault process whose key file lags a rotation, or a version removed too early. Unlike a
# retired one it can come back, so the attempt does not fail: it waits at its recovery point
# (`card_key_unavailable`). One that never will is the operator's to declare lost (`remit vault
# declare-key-version-lost`): the vault then refuses its cards as retired, which ends them.
_KEY_MISSING = "vault_key_missing"


def vault_lacks_card_key(error: RemitError) -> bool:
    return error.code == _KEY_MISSING


# The code of `card_key_unavailable`, which the completer records of an attempt it could not
# resume for want of the card's key, so that `remit held-requests` tells an operator why the
# attempt waits.
CARD_KEY_UNAVAILABLE_CODE: Final = "card_key_unavailable"


def card_key_unavailable() -> RemitError:
    """What a payment's client is told when the vault lacked the key to open its card: a
    retryable 503 of remit's own, since nothing was sent (nothing to look up, and no sign of
    the network's health) and a retry with the key resumes the attempt. The vault's refusal
    names its key ring, which is the operator's business, not the merchant's; the code alone
    tells an operator where to look (the vault's key file)."""
    return RemitError(
        message="This payment could not be sent to the card network right now; nothing was "
        "sent. Retry with the same idempotency key: the payment resumes where it stopped.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        code=CARD_KEY_UNAVAILABLE_CODE,
        should_retry=True,
    )


# The vault's refusals made on its own, before anything reached the acquirer: the card will not
# be opened (`vault_will_not_open_card`), its key version is missing here
# (`vault_lacks_card_key`), its seals failed (`vault_ciphertext_invalid`, DATA_LOSS), or the
# destination is not allowlisted. None says anything of the network's health, so the breaker
# of the forwards is not told of them: told of a success, it would reset its count of failures,
# or close while half-open, though nothing reached the acquirer. Not `reference_reused`: the
# acquirer answers it too, passed on through the vault, and the two cannot be told apart.
_VAULT_OWN_REFUSAL_CODES = frozenset(
    {_KEY_MISSING, _KEY_RETIRED, "vault_ciphertext_invalid", "destination_not_allowed"}
)


def vault_refused_before_sending(error: RemitError) -> bool:
    return vault_will_not_open_card(error) or error.code in _VAULT_OWN_REFUSAL_CODES


def _answered_by_network(error: RemitError) -> bool:
    """The breakers' default: every definite refusal is the network's answer."""
    return True


# A reference the network already holds for an operation with other parameters: the vault
# refuses it once it has recorded an answer for the reference, and passes the acquirer's refusal
# on when the acquirer catches it first; both say FAILED_PRECONDITION with this code. The core
# derives an attempt's reference and its parameters from the same stored attempt, so this is an
# error in remit, never in the merchant's request (see `reference_conflict`).
_REFERENCE_REUSED = "reference_reused"


def network_holds_reference_for_other_parameters(error: RemitError) -> bool:
    return error.code == _REFERENCE_REUSED


def reference_conflict() -> RemitError:
    """What a payment's client is told when the network refused its attempt's reference as
    bound to other parameters: remit's own error, so a 500 api_error, and not the refusal's 400
    idempotency_error, which the SDKs raise as a mistake with the merchant's Idempotency-Key.
    The attempt keeps its recovery point: a retry with the key, or the completer, resumes it
    by looking the reference up at the network first."""
    return RemitError(
        message="An unexpected error occurred while sending this payment to the card network. "
        "Retry with the same idempotency key: the payment resumes where it stopped.",
        kind=ErrorKind.INTERNAL,
        error_type="api_error",
    )


UNUSABLE_CARD_CODE = "payment_method_unexpected_state"


def unusable_card_answer() -> dict[str, object]:
    """The stored answer of an attempt whose card the vault would not open: never sent to the
    network, so nothing was authorized; Stripe calls such an outcome `invalid`."""
    return {
        "approved": False,
        "invalid": True,
        "network_status": "not_sent_to_network",
        "code": UNUSABLE_CARD_CODE,
        "decline_code": None,
        "message": "The card behind this PaymentMethod can no longer be used. "
        "Provide another payment method and confirm again.",
    }


class OutcomeUnknownError(Exception):
    """The network may or may not have performed the operation; look it up by reference."""


def network_unavailable() -> RemitError:
    return RemitError(
        message="The card network is not responding right now. Please retry shortly.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        should_retry=True,
    )


class NotSentError(RemitError):
    """The vault or the acquirer refused the call under load before carrying it out (its
    refusal is marked so: `remit.grpcutil.unstarted`): nothing reached the network."""


def refused_unsent(what: str) -> NotSentError:
    """The answer to a request whose send was refused unstarted: a retryable 503, not the 429
    `rate_limit` the platform's own bounds give. Nothing was sent, but the request is left at
    its recovery point with its key open, and the completer carries it out if the client does
    not retry: a 429 says the request was not executed, so a client would make a new payment
    under a new key, and both would be charged. A 503 with `Stripe-Should-Retry: true` says
    what is so: retry with the same key, which resumes where it stopped."""
    log.warning("%s was not sent: the vault or the acquirer was busy and refused it", what)
    return NotSentError(
        message="The card network is busy and this request was not sent to it yet. Retry with "
        "the same idempotency key: the payment resumes where it stopped.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        should_retry=True,
    )


def no_time_to_send() -> RemitError:
    """The answer to a request whose caller's deadline is too near for a send to the network
    (`send_budget`): nothing was sent, and a retry with the key resumes where it stopped."""
    return RemitError(
        message="This request ran out of time before it could be sent to the card network. "
        "Retry with the same idempotency key: the payment resumes where it stopped.",
        kind=ErrorKind.UNAVAILABLE,
        error_type="api_error",
        should_retry=True,
    )


def refuse_unless_time_to_send(needs_s: float, what: str) -> None:
    if not has_time_for(needs_s):
        log.warning("not sending %s: the caller's deadline is too near", what)
        raise no_time_to_send()


@dataclass(frozen=True)
class AuthorizationOutcome:
    approved: bool
    authorization_id: str | None
    captured: bool
    network_status: str | None
    code: str | None
    decline_code: str | None
    message: str | None
    cvc_check: str | None
    address_line1_check: str | None
    address_postal_code_check: str | None
    risk_level_hint: str | None
    # The test card whose funds skip the pending balance (4000000000000077).
    bypass_pending: bool = False
    # The test card whose payment succeeds, then is disputed as fraudulent (4000000000000259).
    dispute_expected: bool = False
    # The network's id of the transaction; a payment that set the card up for off-session
    # payments gives its id to the payment method, for them to cite (`StoredCredential`).
    network_transaction_id: str | None = None
    # What the network withholds from the capture made in this step (0 when nothing was
    # captured); None when it did not say (see `network_fee`).
    network_fee_minor: int | None = None
    # When the network made the authorization, as its record of it says: told by a look-up
    # (the acquirer's Operation.created), which may come days after it (a lost answer, an
    # acquirer outage). None from a direct answer, which comes as it is made: the core takes
    # its own time of the answer (`authorization_age.answered_at`).
    authorized_at: datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "approved": self.approved,
            "authorization_id": self.authorization_id,
            "captured": self.captured,
            "network_status": self.network_status,
            "code": self.code,
            "decline_code": self.decline_code,
            "message": self.message,
            "cvc_check": self.cvc_check,
            "address_line1_check": self.address_line1_check,
            "address_postal_code_check": self.address_postal_code_check,
            "risk_level_hint": self.risk_level_hint,
            "bypass_pending": self.bypass_pending,
            DISPUTE_EXPECTED_KEY: self.dispute_expected,
            "network_transaction_id": self.network_transaction_id,
            NETWORK_FEE_KEY: self.network_fee_minor,
            AUTHORIZED_AT_KEY: None
            if self.authorized_at is None
            else self.authorized_at.isoformat(),
        }


@dataclass(frozen=True)
class StoredCredential:
    """How a payment relates to a card kept for later payments, as the networks' stored
    credential rules have an authorization say it. An issuer may waive authentication for an
    off-session payment (the merchant charging while the cardholder is away) that cites the
    network transaction id of the payment in which the cardholder, present and authenticated,
    agreed to such payments (test card 4000002500003155)."""

    # The merchant initiates the payment; the cardholder is away.
    off_session: bool = False
    # The cardholder, present, agrees to later off-session payments with this card.
    setup_off_session: bool = False
    # For an off-session payment: the network transaction id of that agreement's payment.
    initial_network_transaction_id: str | None = None


CARDHOLDER_INITIATED: Final = StoredCredential()


@dataclass(frozen=True)
class OperationOutcome:
    approved: bool
    operation_id: str
    amount_minor: int
    code: str | None
    message: str | None
    # What the network withholds from the operation's settlement (a capture's interchange);
    # None when it did not say.
    fee_minor: int | None = None


class CardNetwork(Protocol):
    async def authorize(
        self,
        *,
        account_id: str,
        vault_token: str,
        amount_minor: int,
        currency: str,
        reference: str,
        capture: bool,
        purpose: str,
        three_d_secure_authenticated: bool = False,
        stored_credential: StoredCredential = CARDHOLDER_INITIATED,
    ) -> AuthorizationOutcome: ...

    async def lookup_authorization(
        self, reference: str, expected: ExpectedOperation
    ) -> AuthorizationOutcome | None:
        """The authorization recorded under `reference`, None if the network never saw it;
        a record of another operation than `expected` is refused (`refuse_unless_expected`)."""

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome: ...

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome: ...

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome: ...

    async def lookup_operation(
        self, reference: str, expected: ExpectedOperation
    ) -> OperationOutcome | None:
        """The capture, void or refund recorded under `reference`, as `lookup_authorization`."""


def with_capture_fee(
    network_result: Mapping[str, object] | None, capture: OperationOutcome
) -> dict[str, object]:
    """A charge's stored network answer once a separate capture succeeded: the capture's fee
    is the one the network withheld (the authorization captured nothing)."""
    return {**(network_result or {}), NETWORK_FEE_KEY: capture.fee_minor}


def _text(value: str) -> str | None:
    return value or None


def _remote_text(value: str) -> str | None:
    """A message the network wrote, masked: it becomes a charge's failure_message and an
    intent's last_payment_error, stored and shown, and the network may quote the card."""
    return mask_sensitive(value) if value else None


def network_fee(
    message: acquirer_pb2.AuthorizationResult
    | vault_pb2.ForwardedAuthorization
    | acquirer_pb2.Operation,
) -> int | None:
    """The fee the network reports withholding, or None when it did not report one: an
    acquirer or a vault answer from before fees were reported. Unknown is not zero: the
    ledger books a fee it was told of, and reconciliation leaves an unknown one unchecked
    rather than call it zero."""
    return message.fee if message.HasField("fee") else None


def outcome_from_result(
    result: acquirer_pb2.AuthorizationResult | vault_pb2.ForwardedAuthorization,
) -> AuthorizationOutcome:
    return AuthorizationOutcome(
        approved=result.approved,
        authorization_id=_text(result.authorization_id),
        captured=result.captured,
        network_status=_NETWORK_STATUS.get(result.network_status),
        code=_text(result.code),
        decline_code=_text(result.decline_code),
        message=_remote_text(result.message),
        cvc_check=_CHECK.get(result.cvc_check),
        address_line1_check=_CHECK.get(result.address_line1_check),
        address_postal_code_check=_CHECK.get(result.address_postal_code_check),
        risk_level_hint=_RISK.get(result.risk_level_hint),
        bypass_pending=result.bypass_pending,
        dispute_expected=result.dispute_expected,
        network_transaction_id=_text(result.network_transaction_id),
        network_fee_minor=network_fee(result),
    )


def outcome_of_operation(operation: acquirer_pb2.Operation) -> OperationOutcome:
    return OperationOutcome(
        approved=operation.approved,
        operation_id=operation.id,
        amount_minor=operation.amount,
        code=_text(operation.code),
        message=_remote_text(operation.message),
        fee_minor=network_fee(operation),
    )


class GrpcCardNetwork:
    """The real network: the vault forwards authorizations, the acquirer does the rest."""

    def __init__(
        self,
        vault: vault_pb2_grpc.VaultServiceAsyncStub,
        acquirer: acquirer_pb2_grpc.AcquirerServiceAsyncStub,
        breakers: NetworkBreakers | None = None,
        requester: str = "core",
    ) -> None:
        self._vault = vault
        self._acquirer = acquirer
        self._breakers = breakers or NetworkBreakers()
        self._requester = requester

    @property
    def breakers(self) -> NetworkBreakers:
        return self._breakers

    async def _guarded(
        self,
        breaker: CircuitBreaker,
        start_call: Callable[[], Awaitable[Reply]],
        what: str,
        answered_by_network: Callable[[RemitError], bool] = _answered_by_network,
    ) -> Reply:
        """Run one call through `breaker`, the one of its path (`NetworkBreakers`), which is
        told of this call's answer only; a gRPC call starts when created, so the breaker is
        consulted before `start_call` makes it. A RESOURCE_EXHAUSTED is an unknown outcome
        (gRPC answers it to a reply too large, after the server acted) unless marked as a
        refusal made before anything was done, which raises `NotSentError`. `what`: the
        operation's reference, for the log. `answered_by_network`: whether a definite refusal
        came from the network, which the breaker is then told of as an answer; the others were
        made on the way, before anything reached it, and tell it nothing.

        The probe of a half-open breaker not told of the call's outcome, however the call ends
        (a refusal that tells nothing, a cancellation, an error raised while its failure is
        classified), is released for the next call: left claimed, the breaker would refuse
        every call until the process restarts."""
        probing = breaker.state is BreakerState.HALF_OPEN
        if not breaker.allow():
            raise network_unavailable()
        probe = breaker.probe
        told = False
        try:
            try:
                reply = await start_call()
            except grpc.aio.AioRpcError as error:
                if refused_unstarted(error):
                    # Refused unseen because the service is busy: it says nothing of the
                    # network's health, so the breaker (which would refuse every payment while
                    # open) is not told.
                    raise refused_unsent(what) from None
                if refused_as_not_sent(error):
                    # The vault had too little of the deadline left to forward: nothing was
                    # sent, so nothing is looked up, and the network's health is not in question.
                    raise no_time_to_send() from None
                if refused_as_in_flight(error):
                    # The vault will not open the card, and an earlier forward of the reference
                    # may still be at the acquirer (`remit.grpcutil.forward_in_flight`):
                    # unknown, to be looked up, but no sign of the network's health.
                    raise OutcomeUnknownError(
                        "an earlier forward may still be at the acquirer"
                    ) from None
                if error.code() in _UNKNOWN_OUTCOME_CODES:
                    breaker.record_failure()
                    told = True
                    raise OutcomeUnknownError(error.code().name) from None
                refusal = remit_error_from_rpc_error(error)
                if answered_by_network(refusal):
                    breaker.record_success()
                    told = True
                raise refusal from None
            breaker.record_success()
            told = True
            return reply
        finally:
            # Most often a cancellation (the caller's deadline ran out mid-call), which says
            # nothing of the network's health either.
            if probing and not told:
                breaker.release_probe(probe)

    async def authorize(
        self,
        *,
        account_id: str,
        vault_token: str,
        amount_minor: int,
        currency: str,
        reference: str,
        capture: bool,
        purpose: str,
        three_d_secure_authenticated: bool = False,
        stored_credential: StoredCredential = CARDHOLDER_INITIATED,
    ) -> AuthorizationOutcome:
        request = vault_pb2.ForwardAuthorizationRequest(
            account_id=account_id,
            vault_token=vault_token,
            destination=ACQUIRER_DESTINATION,
            amount=amount_minor,
            currency=currency,
            reference=reference,
            capture=capture,
            purpose=purpose,
            requester=self._requester,
            three_d_secure_authenticated=three_d_secure_authenticated,
            off_session=stored_credential.off_session,
            setup_off_session=stored_credential.setup_off_session,
            initial_network_transaction_id=stored_credential.initial_network_transaction_id or "",
        )
        needs_s = authorization_needs_s()
        refuse_unless_time_to_send(needs_s, reference)
        reply = await self._guarded(
            self._breakers.forwards,
            lambda: self._vault.ForwardAuthorization(request, timeout=bounded_timeout(needs_s)),
            reference,
            answered_by_network=lambda refusal: not vault_refused_before_sending(refusal),
        )
        return outcome_from_result(reply.result)

    async def _lookup(
        self, reference: str, expected: ExpectedOperation
    ) -> acquirer_pb2.Operation | None:
        if not has_time_for(LOOKUP_NEEDS_S):
            # Unknown still: the caller's deadline leaves no time to ask. Nothing was asked,
            # so the breaker is not told of it.
            raise OutcomeUnknownError("no time left to look the operation up")
        try:
            reply = await self._guarded(
                self._breakers.lookups,
                lambda: self._acquirer.LookupOperation(
                    acquirer_pb2.LookupOperationRequest(reference=reference),
                    timeout=bounded_timeout(network_timeout_s()),
                ),
                f"the look-up of {reference}",
            )
        except NotSentError:
            # Not asked: the outcome stays unknown, and is asked again after a pause.
            raise OutcomeUnknownError("the acquirer was too busy to look it up") from None
        except RemitError as error:
            if error.kind is ErrorKind.NOT_FOUND:
                return None
            raise
        refuse_unless_expected(reference, expected, reply.operation)
        return reply.operation

    async def lookup_authorization(
        self, reference: str, expected: ExpectedOperation
    ) -> AuthorizationOutcome | None:
        operation = await self._lookup(reference, expected)
        if operation is None:
            return None
        outcome = outcome_from_result(operation.authorization)
        if not operation.HasField("created"):
            return outcome
        try:
            made_at = from_timestamp(operation.created)
        except (ValueError, OverflowError):
            # A time no date can hold says nothing of when the network authorized: the
            # authorization counts from its recording, as one answered directly does, rather
            # than failing every try to finish the attempt.
            log.warning("the network's record of %s holds an unreadable time", reference)
            return outcome
        return replace(outcome, authorized_at=made_at)

    async def lookup_operation(
        self, reference: str, expected: ExpectedOperation
    ) -> OperationOutcome | None:
        operation = await self._lookup(reference, expected)
        return None if operation is None else outcome_of_operation(operation)

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        refuse_unless_time_to_send(operation_needs_s(), reference)
        reply = await self._guarded(
            self._breakers.operations,
            lambda: self._acquirer.Capture(
                acquirer_pb2.CaptureRequest(
                    authorization_id=authorization_id, amount=amount_minor, reference=reference
                ),
                timeout=bounded_timeout(operation_needs_s()),
            ),
            reference,
        )
        return outcome_of_operation(reply.operation)

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        refuse_unless_time_to_send(operation_needs_s(), reference)
        reply = await self._guarded(
            self._breakers.operations,
            lambda: self._acquirer.Void(
                acquirer_pb2.VoidRequest(authorization_id=authorization_id, reference=reference),
                timeout=bounded_timeout(operation_needs_s()),
            ),
            reference,
        )
        return outcome_of_operation(reply.operation)

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        refuse_unless_time_to_send(operation_needs_s(), reference)
        reply = await self._guarded(
            self._breakers.operations,
            lambda: self._acquirer.Refund(
                acquirer_pb2.RefundRequest(
                    authorization_id=authorization_id, amount=amount_minor, reference=reference
                ),
                timeout=bounded_timeout(operation_needs_s()),
            ),
            reference,
        )
        return outcome_of_operation(reply.operation)
