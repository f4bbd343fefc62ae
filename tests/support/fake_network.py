"""An in-process card network for service-level tests: test-card behaviour by vault token,
at-most-once per reference like the real acquirer, and injectable faults."""

from dataclasses import dataclass, field

from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import random_token
from remit.payments.network import (
    CARDHOLDER_INITIATED,
    AuthorizationOutcome,
    OperationOutcome,
    OutcomeUnknownError,
    StoredCredential,
)

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

    def refuse(self, reference: str, code: str, message: str) -> None:
        """Refuse the capture, void or refund sent under `reference`, as the acquirer refuses
        a capture of an authorization released since: recorded like any outcome, so sending it
        again or looking it up finds the same refusal."""
        self.operations[reference] = OperationOutcome(
            False, f"op_{random_token(10)}", 0, code, message
        )

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
            )
        if fault == "after":
            raise OutcomeUnknownError("DEADLINE_EXCEEDED")
        return self.authorizations[reference]

    async def lookup_authorization(self, reference: str) -> AuthorizationOutcome | None:
        self.looked_up.append(reference)
        if self.lookup_faults > 0:
            self.lookup_faults -= 1
            raise OutcomeUnknownError("UNAVAILABLE")
        return self.authorizations.get(reference)

    async def _operation(self, reference: str, amount_minor: int) -> OperationOutcome:
        fault = self._fault()
        if fault == "before":
            raise OutcomeUnknownError("UNAVAILABLE")
        self.sent.append(reference)
        outcome = self.operations.setdefault(
            reference,
            OperationOutcome(True, f"op_{random_token(10)}", amount_minor, None, None),
        )
        if fault == "after":
            raise OutcomeUnknownError("DEADLINE_EXCEEDED")
        return outcome

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        return await self._operation(reference, amount_minor)

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        return await self._operation(reference, 0)

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        return await self._operation(reference, amount_minor)

    async def lookup_operation(self, reference: str) -> OperationOutcome | None:
        self.looked_up.append(reference)
        if self.lookup_faults > 0:
            self.lookup_faults -= 1
            raise OutcomeUnknownError("UNAVAILABLE")
        return self.operations.get(reference)
