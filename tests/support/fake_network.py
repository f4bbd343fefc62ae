"""An in-process card network for service-level tests: test-card behaviour by vault token,
at-most-once per reference like the real acquirer, and injectable faults.

Its look-ups check what they find against what they expect as the real network's do
(`refuse_unless_expected`), on a record of each operation as the acquirer's LookupOperation
returns it, made of what was sent."""

from dataclasses import dataclass, field, replace

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import random_token
from remit.grpcutil.protoconv import from_timestamp, timestamp
from remit.payments.lookup_expectations import ExpectedOperation, refuse_unless_expected
from remit.payments.network import (
    CARDHOLDER_INITIATED,
    AuthorizationOutcome,
    OperationOutcome,
    OutcomeUnknownError,
    StoredCredential,
)
from remit_api.acquirer.v1 import acquirer_pb2

# The vault token of a card whose payments succeed, then are disputed (4000000000000259).
DISPUTED = "dispute"

DECLINES = {
    "declined": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
}


@dataclass
class FakeNetwork:
    authorizations: dict[str, AuthorizationOutcome] = field(default_factory=dict)
    operations: dict[str, OperationOutcome] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)
    # The references looked up (authorizations and operations), in order.
    looked_up: list[str] = field(default_factory=list)
    # Faults: "before" fails without performing, "after" performs then loses the response.
    faults: list[str] = field(default_factory=list)
    lookup_faults: int = 0
    # Vault tokens the vault will not open (deleted since the attempt was made): the forward is
    # refused as the vault refuses it, NOT_FOUND, and nothing reaches the network.
    unopenable: set[str] = field(default_factory=set)
    # What each authorization sent said of the card being kept, by reference.
    stored_credentials: dict[str, StoredCredential] = field(default_factory=dict)
    # The acquirer's record of each operation performed here, by reference, as a look-up finds
    # it (`hold_otherwise` changes one). An outcome a test put in `authorizations` or
    # `operations` itself has none, and its look-ups find it as they expect it.
    held: dict[str, acquirer_pb2.Operation] = field(default_factory=dict)
    # The merchant and currency of each authorization made here: the acquirer records its
    # captures, voids and refunds with them.
    authorization_terms: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The network's clock: each record's creation time, which a look-up of an authorization
    # tells as the time it was made. A test that moves the core's clock passes the same one.
    clock: Clock = field(default_factory=SystemClock)

    def refuse(self, reference: str, code: str, message: str) -> None:
        """Refuse the capture, void or refund sent under `reference`, as the acquirer refuses
        a capture of an authorization released since: recorded like any outcome, so sending it
        again or looking it up finds the same refusal."""
        self.operations[reference] = OperationOutcome(
            False, f"op_{random_token(10)}", 0, code, message
        )

    def hold_otherwise(self, reference: str, **fields: object) -> None:
        """Make the network hold another operation under `reference` than the one performed:
        its record with `fields` changed (`Operation` fields; `captured` for its authorization
        result's), as a bug or a reused reference would leave it."""
        changed = acquirer_pb2.Operation()
        changed.CopyFrom(self.held[reference])
        for name, value in fields.items():
            if name == "captured":
                changed.authorization.captured = bool(value)
            else:
                setattr(changed, name, value)
        self.held[reference] = changed

    def _refuse_unless_expected(self, reference: str, expected: ExpectedOperation) -> None:
        held = self.held.get(reference)
        if held is not None:
            refuse_unless_expected(reference, expected, held)

    def _fault(self) -> str | None:
        return self.faults.pop(0) if self.faults else None

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
        if vault_token in self.unopenable:
            raise RemitError(
                message=f"No such vault token: '{vault_token}'",
                kind=ErrorKind.NOT_FOUND,
                code="resource_missing",
                param="vault_token",
            )
        fault = self._fault()
        if fault == "before":
            raise OutcomeUnknownError("UNAVAILABLE")
        self.sent.append(reference)
        self.stored_credentials[reference] = stored_credential
        if reference not in self.authorizations:
            decline = DECLINES.get(vault_token)
            self.authorizations[reference] = AuthorizationOutcome(
                approved=decline is None,
                authorization_id=None if decline else f"auth_{random_token(10)}",
                captured=capture and decline is None,
                network_status="declined_by_network" if decline else "approved_by_network",
                code=decline[0] if decline else None,
                decline_code=decline[1] if decline else None,
                message=decline[2] if decline else None,
                cvc_check="pass",
                address_line1_check=None,
                address_postal_code_check=None,
                risk_level_hint=None,
                network_transaction_id=random_token(15),
                # The vault token of the test card whose payment is then disputed.
                dispute_expected=vault_token == DISPUTED,
            )
            self._record_authorization(
                self.authorizations[reference], account_id, amount_minor, currency, reference
            )
        if fault == "after":
            raise OutcomeUnknownError("DEADLINE_EXCEEDED")
        return self.authorizations[reference]

    def _record_authorization(
        self,
        outcome: AuthorizationOutcome,
        merchant_id: str,
        amount_minor: int,
        currency: str,
        reference: str,
    ) -> None:
        self.held[reference] = acquirer_pb2.Operation(
            id=f"op_{random_token(10)}",
            reference=reference,
            kind=acquirer_pb2.OPERATION_KIND_AUTHORIZE,
            created=timestamp(self.clock.now()),
            authorization_id=outcome.authorization_id or "",
            amount=amount_minor,
            currency=currency,
            merchant_id=merchant_id,
            approved=outcome.approved,
            authorization=acquirer_pb2.AuthorizationResult(
                approved=outcome.approved,
                authorization_id=outcome.authorization_id or "",
                captured=outcome.captured,
            ),
        )
        if outcome.authorization_id is not None:
            self.authorization_terms[outcome.authorization_id] = (merchant_id, currency)

    async def lookup_authorization(
        self, reference: str, expected: ExpectedOperation
    ) -> AuthorizationOutcome | None:
        self.looked_up.append(reference)
        if self.lookup_faults > 0:
            self.lookup_faults -= 1
            raise OutcomeUnknownError("UNAVAILABLE")
        found = self.authorizations.get(reference)
        if found is None:
            return None
        self._refuse_unless_expected(reference, expected)
        held = self.held.get(reference)
        if held is None or not held.HasField("created"):
            return found
        # As the acquirer's record tells it (`GrpcCardNetwork.lookup_authorization`).
        return replace(found, authorized_at=from_timestamp(held.created))

    async def _operation(
        self,
        kind: acquirer_pb2.OperationKind.ValueType,
        authorization_id: str,
        reference: str,
        amount_minor: int,
    ) -> OperationOutcome:
        fault = self._fault()
        if fault == "before":
            raise OutcomeUnknownError("UNAVAILABLE")
        self.sent.append(reference)
        if reference not in self.operations:
            outcome = OperationOutcome(True, f"op_{random_token(10)}", amount_minor, None, None)
            self.operations[reference] = outcome
            terms = self.authorization_terms.get(authorization_id)
            if terms is not None:
                merchant_id, currency = terms
                self.held[reference] = acquirer_pb2.Operation(
                    id=outcome.operation_id,
                    reference=reference,
                    kind=kind,
                    created=timestamp(self.clock.now()),
                    authorization_id=authorization_id,
                    amount=amount_minor,
                    currency=currency,
                    merchant_id=merchant_id,
                    approved=True,
                )
        outcome = self.operations[reference]
        if fault == "after":
            raise OutcomeUnknownError("DEADLINE_EXCEEDED")
        return outcome

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        return await self._operation(
            acquirer_pb2.OPERATION_KIND_CAPTURE, authorization_id, reference, amount_minor
        )

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        return await self._operation(
            acquirer_pb2.OPERATION_KIND_VOID, authorization_id, reference, 0
        )

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        return await self._operation(
            acquirer_pb2.OPERATION_KIND_REFUND, authorization_id, reference, amount_minor
        )

    async def lookup_operation(
        self, reference: str, expected: ExpectedOperation
    ) -> OperationOutcome | None:
        self.looked_up.append(reference)
        if self.lookup_faults > 0:
            self.lookup_faults -= 1
            raise OutcomeUnknownError("UNAVAILABLE")
        found = self.operations.get(reference)
        if found is not None:
            self._refuse_unless_expected(reference, expected)
        return found
