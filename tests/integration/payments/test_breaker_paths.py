"""Each path to the network has its own breaker (`NetworkBreakers`): the vault's forwards, the
acquirer's captures, voids and refunds, and the acquirer's look-ups.

A send whose outcome is unknown is settled by looking it up, then sent again when the network
has no record of it (`PaymentsService._settle`). When every send fails while the look-ups
answer "no record" (the vault down, or its link to the acquirer; an acquirer failing its
writes), a look-up's answer must not close the breaker of the sends: it would never open, and
every payment would wait out one timeout after another. Once the failing path's breaker
opens, its sends are answered at once with a retryable error, and look-ups still settle the
operations whose outcome is unknown."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError, not_found
from remit.grpcutil.errors import ErrorMappingInterceptor, error_detail
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.domain import PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import GrpcCardNetwork, OutcomeUnknownError
from remit.payments.service import Done, PaymentsService
from remit.payments.tables import idempotency_keys
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_unopenable_card import _pay_again, _recovery_point
from tests.support.fake_acquirer import RecordingAcquirer

pytestmark = pytest.mark.anyio

Context = grpc.aio.ServicerContext[Any, Any]
# Above 2: a payment's first send follows the previous payment's last send with no look-up in
# between, so two failures in a row would happen even with a look-up closing the breaker.
THRESHOLD = 3
# An open breaker stays open for the whole test, however slowly it runs: one that went half-open
# midway would let a probe through, and a test's count of sends would depend on the machine's load.
OPEN_S = 3600.0


class VaultCutOff(vault_pb2_grpc.VaultServiceServicer):
    """A vault that cannot reach its acquirer: every forward fails as unknown."""

    def __init__(self) -> None:
        self.forwards = 0

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        self.forwards += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the acquirer is out of reach")
        raise AssertionError("unreachable")


class ReadableAcquirer(RecordingAcquirer):
    """An acquirer that answers look-ups (from `held`, else "no record", as the real one does)
    and fails every capture as unknown."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, acquirer_pb2.Operation] = {}
        self.lookups = 0
        self.captures = 0

    async def LookupOperation(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.LookupOperationRequest, context: Context
    ) -> acquirer_pb2.LookupOperationResponse:
        self.lookups += 1
        held = self.held.get(request.reference)
        if held is None:
            raise not_found("operation", request.reference, param="reference")
        return acquirer_pb2.LookupOperationResponse(operation=held)

    async def Capture(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.CaptureRequest, context: Context
    ) -> acquirer_pb2.CaptureResponse:
        self.captures += 1
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "the issuer did not answer")
        raise AssertionError("unreachable")


@asynccontextmanager
async def _serving(add: Any, servicer: Any) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


@asynccontextmanager
async def _network(
    vault: vault_pb2_grpc.VaultServiceServicer, acquirer: ReadableAcquirer
) -> AsyncIterator[GrpcCardNetwork]:
    async with (
        _serving(vault_pb2_grpc.add_VaultServiceServicer_to_server, vault) as vault_channel,
        _serving(
            acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server, acquirer
        ) as acquirer_channel,
    ):
        yield GrpcCardNetwork(
            vault_pb2_grpc.VaultServiceStub(vault_channel),
            acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel),
            NetworkBreakers(
                forwards=CircuitBreaker(failure_threshold=THRESHOLD, open_s=OPEN_S),
                operations=CircuitBreaker(failure_threshold=THRESHOLD, open_s=OPEN_S),
                lookups=CircuitBreaker(failure_threshold=THRESHOLD, open_s=OPEN_S),
            ),
        )


async def _charge_of(engine: AsyncEngine, key: str) -> str:
    async with engine.connect() as db:
        charge = await db.scalar(
            select(idempotency_keys.c.charge_id).where(idempotency_keys.c.key == key)
        )
    assert isinstance(charge, str)
    return charge


async def test_payments_are_answered_at_once_while_the_vault_cannot_forward(
    core_engine: AsyncEngine, account_id: str
) -> None:
    vault, acquirer = VaultCutOff(), ReadableAcquirer()
    async with _network(vault, acquirer) as network:
        payments = PaymentsService(
            core_engine, network, FakeMethods(), present=payment_intent_message
        )
        refusals = []
        for n in range(4):
            with pytest.raises(RemitError) as raised:
                await pay(payments, account_id, f"cut-off-{n}")
            refusals.append(raised.value)
        # The breaker of the forwards opened on its threshold, though every look-up in
        # between answered: no payment after it waited on the vault.
        assert vault.forwards == THRESHOLD
        assert network.breakers.forwards.state is BreakerState.OPEN
        for refusal in refusals:
            assert refusal.kind is ErrorKind.UNAVAILABLE
            assert refusal.should_retry
            assert error_detail(refusal).http_status == 503
        for n in range(4):
            point = await _recovery_point(core_engine, f"cut-off-{n}")
            assert point == RecoveryPoint.ATTEMPT_CREATED.value

        # Look-ups still settle an outcome that was unknown: the first payment's forward had
        # reached the network after all, and its retry finds it there, sending nothing.
        charge = await _charge_of(core_engine, "cut-off-0")
        acquirer.held[charge] = acquirer_pb2.Operation(
            id="op_found",
            reference=charge,
            kind=acquirer_pb2.OPERATION_KIND_AUTHORIZE,
            merchant_id=account_id,
            amount=1000,
            currency="usd",
            approved=True,
            authorization_id="auth_found",
            authorization=acquirer_pb2.AuthorizationResult(
                approved=True,
                authorization_id="auth_found",
                captured=True,
                network_status=common_pb2.NETWORK_STATUS_APPROVED_BY_NETWORK,
            ),
        )
        resumed = await _pay_again(payments, account_id, "cut-off-0")
    assert isinstance(resumed, Done)
    assert isinstance(resumed.value, PaymentIntent)
    assert resumed.value.status is Status.SUCCEEDED
    assert vault.forwards == THRESHOLD
    assert network.breakers.lookups.state is BreakerState.CLOSED


async def test_failing_captures_open_their_breaker_though_look_ups_answer() -> None:
    acquirer = ReadableAcquirer()
    expected = ExpectedOperation(
        kind=acquirer_pb2.OPERATION_KIND_CAPTURE,
        merchant_id="acct_1",
        currency="usd",
        amount_minor=1000,
    )
    async with _network(VaultCutOff(), acquirer) as network:
        # How `PaymentsService._settle` goes on: send, and on an unknown outcome look the
        # reference up, then send again when the network has no record of it.
        for _ in range(THRESHOLD):
            with pytest.raises(OutcomeUnknownError):
                await network.capture(
                    authorization_id="auth_1", amount_minor=1000, reference="ch_1"
                )
            assert await network.lookup_operation("ch_1", expected) is None
        with pytest.raises(RemitError) as refused:
            await network.capture(authorization_id="auth_1", amount_minor=1000, reference="ch_1")
    assert acquirer.captures == THRESHOLD
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert refused.value.should_retry
    assert network.breakers.operations.state is BreakerState.OPEN
    assert network.breakers.lookups.state is BreakerState.CLOSED
    # Nothing went through the vault: its forwards' breaker is another path's.
    assert network.breakers.forwards.state is BreakerState.CLOSED
