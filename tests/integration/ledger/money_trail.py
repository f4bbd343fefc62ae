"""The money trail between the simulated acquirer and the ledger, in one process: payments run
against the real acquirer (its service, its database, its gRPC server) and post to the real
ledger, and reconciliation reads the acquirer's settlement report over gRPC.

Only the authorization skips the vault: `TrailNetwork.authorize` sends the test card straight
to the acquirer, as the vault would after decrypting it. Every other call goes through
`GrpcCardNetwork`, so a lost response is settled by the same look-up the core makes.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.ledger.service import LedgerService
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.network import (
    CARDHOLDER_INITIATED,
    AuthorizationOutcome,
    GrpcCardNetwork,
    OperationOutcome,
    OutcomeUnknownError,
    StoredCredential,
    outcome_from_result,
)
from remit.payments.ports import HookChain
from remit.payments.service import ConfirmParams, Done, KeyedCall, PaymentsService
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from tests.integration.payments.conftest import FakeMethods

# The vault tokens of tests.integration.payments.conftest.FakeMethods, by the test card
# behind each.
CARD_NUMBERS = {
    "visa": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient": "4000000000009995",
    # 3-D Secure cards: on-session and at setup only, and always.
    "on_setup": "4000002500003155",
    "always": "4000002760003184",
}


class TrailNetwork(GrpcCardNetwork):
    """The acquirer over gRPC; `lose` names the calls ("capture", "refund", "void",
    "authorize") whose next response is lost after the acquirer committed them, and
    `finding_out_s` is how long (on the shared clock) the caller then takes to look it up."""

    def __init__(
        self, stub: "acquirer_pb2_grpc.AcquirerServiceAsyncStub", clock: FixedClock
    ) -> None:
        # No vault: `authorize` below goes straight to the acquirer.
        super().__init__(vault=None, acquirer=stub)  # type: ignore[arg-type]
        self.stub = stub
        self.clock = clock
        self.lose: list[str] = []
        self.finding_out_s = 0.0

    def _lost(self, call: str) -> None:
        if call in self.lose:
            self.lose.remove(call)
            self.clock.advance(self.finding_out_s)
            raise OutcomeUnknownError("UNAVAILABLE")

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
        stub = self.stub
        reply = await self._guarded(
            self.breakers.forwards,
            lambda: stub.Authorize(
                pb.AuthorizeRequest(
                    reference=reference,
                    card_number=CARD_NUMBERS[vault_token],
                    exp_month=12,
                    exp_year=2034,
                    amount=amount_minor,
                    currency=currency,
                    capture=capture,
                    merchant_id=account_id,
                    three_d_secure_authenticated=three_d_secure_authenticated,
                    off_session=stored_credential.off_session,
                    setup_off_session=stored_credential.setup_off_session,
                    initial_network_transaction_id=(
                        stored_credential.initial_network_transaction_id or ""
                    ),
                )
            ),
            reference,
        )
        self._lost("authorize")
        return outcome_from_result(reply.result)

    async def capture(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        outcome = await super().capture(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )
        self._lost("capture")
        return outcome

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        outcome = await super().void(authorization_id=authorization_id, reference=reference)
        self._lost("void")
        return outcome

    async def refund(
        self, *, authorization_id: str, amount_minor: int, reference: str
    ) -> OperationOutcome:
        outcome = await super().refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )
        self._lost("refund")
        return outcome


# The grace of the trail's acquirer: the default settings' (`settlement_grace`).
ACQUIRER_GRACE: Final = timedelta(seconds=97)


@dataclass
class Trail:
    clock: FixedClock
    network: TrailNetwork
    payments: PaymentsService
    ledger: LedgerService
    acquirer: AcquirerService


@asynccontextmanager
async def money_trail(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    clock: FixedClock,
    network: Callable[
        ["acquirer_pb2_grpc.AcquirerServiceAsyncStub", FixedClock], TrailNetwork
    ] = TrailNetwork,
) -> AsyncIterator[Trail]:
    """`network`: the core's network to the acquirer, a `TrailNetwork` by default. The
    acquirer's grace after midnight is `ACQUIRER_GRACE`, not the one the environment's
    settings give, which the tests' clocks could not count on."""
    acquirer = AcquirerService(acquirer_engine, clock, grace=ACQUIRER_GRACE)
    server = grpc.aio.server(interceptors=acquirer_interceptors(FaultConfig()))
    acquirer_registration(acquirer).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = acquirer_pb2_grpc.AcquirerServiceStub(channel)
            trail_network = network(stub, clock)
            payments = PaymentsService(
                core_engine,
                trail_network,
                FakeMethods(),
                present=payment_intent_message,
                hooks=HookChain([LedgerPostings(clock)]),
                clock=clock,
            )
            ledger = LedgerService(core_engine, clock, stub)
            yield Trail(clock, trail_network, payments, ledger, acquirer)
    finally:
        await server.stop(None)


def keyed(account_id: str, key: str, endpoint: str) -> KeyedCall:
    return KeyedCall(account_id=account_id, key=key, endpoint=endpoint, request_body=key.encode())


def respond(intent: PaymentIntent) -> bytes:
    return intent.id.encode()


async def pay(
    trail: Trail,
    account_id: str,
    key: str,
    amount: int,
    currency: str = "usd",
    *,
    capture: CaptureMethod = CaptureMethod.AUTOMATIC,
    pm: str = "pm_visa",
) -> PaymentIntent:
    result = await trail.payments.create_payment_intent(
        keyed(account_id, key, "CreatePaymentIntent"),
        NewPaymentIntent(amount_minor=amount, currency=currency, capture_method=capture),
        respond,
        confirm=ConfirmParams(payment_method_id=pm),
    )
    assert isinstance(result, Done)
    return result.value


async def capture(trail: Trail, account_id: str, key: str, intent_id: str, amount: int) -> None:
    result = await trail.payments.capture_payment_intent(
        keyed(account_id, key, "CapturePaymentIntent"), intent_id, amount, respond
    )
    assert isinstance(result, Done)


async def refund(
    trail: Trail, account_id: str, key: str, intent_id: str, amount: int | None
) -> str:
    result = await trail.payments.create_refund(
        keyed(account_id, key, "CreateRefund"),
        charge_id=None,
        payment_intent_id=intent_id,
        amount_minor=amount,
        reason=None,
        metadata={},
        respond=lambda r: r.id.encode(),
    )
    assert isinstance(result, Done)
    return result.value.id


async def cancel(trail: Trail, account_id: str, key: str, intent_id: str) -> None:
    result = await trail.payments.cancel_payment_intent(
        keyed(account_id, key, "CancelPaymentIntent"), intent_id, None, respond
    )
    assert isinstance(result, Done)
