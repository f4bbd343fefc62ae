"""A call the vault or the acquirer refused under load before carrying it out (its refusal
marked so by remit's admission bound) was not sent: the core looks nothing up and answers
a retryable UNAVAILABLE, never the 429 that would say the request was not executed (it is
carried out from its recovery point); a retry with the key resumes the payment. A
RESOURCE_EXHAUSTED without the mark (gRPC's own, for a reply past its size limit, after the
server acted) stays an unknown outcome."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from remit.core.errors import ErrorKind
from remit.core.secrets import Secret
from remit.grpcutil.concurrency import ConcurrencyLimit
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.unstarted import UnstartedRefusalError, unstarted_overload_refusal
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import (
    AuthorizationOutcome,
    GrpcCardNetwork,
    NotSentError,
    OutcomeUnknownError,
    refused_unsent,
)
from remit.payments.service import ConfirmParams, Done, PaymentsService
from remit.vault.domain import OutboundAuthorization
from remit.vault.forwarding import GrpcAcquirerDestination
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.payments.test_payments_service import call, respond
from tests.support.fake_acquirer import RecordingAcquirer
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio

Context = grpc.aio.ServicerContext[Any, Any]
_OUTBOUND = OutboundAuthorization(
    reference="ch_1",
    merchant_id="acct_1",
    card_number=Secret("4242424242424242"),
    exp_month=12,
    exp_year=2034,
    cvc=None,
    amount_minor=1000,
    currency="usd",
    capture=True,
)
_AN_AUTHORIZATION = ExpectedOperation(
    kind=acquirer_pb2.OPERATION_KIND_AUTHORIZE,
    merchant_id="acct_1",
    currency="usd",
    amount_minor=1000,
)


class CountingAcquirer(RecordingAcquirer):
    """Counts the look-ups it is asked; its voids fail as `void_failure` says."""

    def __init__(self, void_failure: tuple[grpc.StatusCode, str] | None = None) -> None:
        super().__init__()
        self.lookups = 0
        self.void_failure = void_failure

    async def Void(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.VoidRequest, context: Context
    ) -> acquirer_pb2.VoidResponse:
        assert self.void_failure is not None
        await context.abort(*self.void_failure)
        raise AssertionError("unreachable")

    async def LookupOperation(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.LookupOperationRequest, context: Context
    ) -> acquirer_pb2.LookupOperationResponse:
        self.lookups += 1
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such operation")
        raise AssertionError("unreachable")


class RelayingVault(vault_pb2_grpc.VaultServiceServicer):
    """A vault whose acquirer refused the forward unstarted, which it passes on."""

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        raise unstarted_overload_refusal("card network")


@asynccontextmanager
async def _serving(
    add: Any, servicer: Any, interceptors: list[grpc.aio.ServerInterceptor]
) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=interceptors)
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@asynccontextmanager
async def _network(
    acquirer: CountingAcquirer, acquirer_interceptors: list[grpc.aio.ServerInterceptor]
) -> AsyncIterator[GrpcCardNetwork]:
    async with (
        _serving(
            acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server, acquirer, acquirer_interceptors
        ) as acquirer_target,
        _serving(
            vault_pb2_grpc.add_VaultServiceServicer_to_server,
            RelayingVault(),
            [ErrorMappingInterceptor()],
        ) as vault_target,
        grpc.aio.insecure_channel(acquirer_target) as acquirer_channel,
        grpc.aio.insecure_channel(vault_target) as vault_channel,
    ):
        yield GrpcCardNetwork(
            vault_pb2_grpc.VaultServiceStub(vault_channel),
            acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel),
        )


async def test_a_send_the_bound_refused_is_not_sent_and_is_retryable() -> None:
    acquirer = CountingAcquirer()
    # A bound of none: every call is refused as past it, by the bound's own code.
    async with _network(acquirer, [ConcurrencyLimit(0)]) as network:
        with pytest.raises(NotSentError) as refused:
            await network.void(authorization_id="auth_1", reference="ch_1")
    # Not a 429: the request stays at its recovery point, and the completer would carry it out;
    # a client told it was not executed would pay again under another key.
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert refused.value.should_retry
    assert acquirer.lookups == 0
    assert network.breakers.operations.state.value == "closed"


async def test_an_authorization_the_vault_passes_on_as_refused_unstarted_was_not_sent() -> None:
    async with _network(CountingAcquirer(), []) as network:
        with pytest.raises(NotSentError):
            await network.authorize(
                account_id="acct_1",
                vault_token="tok_1",
                amount_minor=1000,
                currency="usd",
                reference="ch_1",
                capture=True,
                purpose="a test",
            )


async def test_a_look_up_the_bound_refused_leaves_the_outcome_unknown() -> None:
    async with _network(CountingAcquirer(), [ConcurrencyLimit(0)]) as network:
        with pytest.raises(OutcomeUnknownError):
            await network.lookup_authorization("ch_1", _AN_AUTHORIZATION)


async def test_an_unmarked_resource_exhausted_is_an_unknown_outcome() -> None:
    too_large = (grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max")
    acquirer = CountingAcquirer(void_failure=too_large)
    async with _network(acquirer, []) as network:
        with pytest.raises(OutcomeUnknownError):
            await network.void(authorization_id="auth_1", reference="ch_1")


async def test_the_vault_passes_the_acquirers_unstarted_refusal_on_as_such() -> None:
    async with _serving(
        acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server,
        RecordingAcquirer(),
        [ConcurrencyLimit(0)],
    ) as target:
        destination = GrpcAcquirerDestination(target)
        try:
            with pytest.raises(UnstartedRefusalError) as refused:
                await destination.authorize(_OUTBOUND)
        finally:
            await destination.close()
    assert refused.value.kind is ErrorKind.RESOURCE_EXHAUSTED


class BusyOnce(FakeNetwork):
    """Its first authorization is refused unstarted, as the vault or acquirer refuses one."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = True

    async def authorize(self, **fields: Any) -> AuthorizationOutcome:
        if self.busy:
            self.busy = False
            raise refused_unsent(str(fields["reference"]))
        return await super().authorize(**fields)


@pytest.fixture
def network() -> BusyOnce:
    return BusyOnce()


async def test_a_payment_refused_unstarted_is_retryable_with_its_key(
    payments: PaymentsService, network: BusyOnce, account_id: str
) -> None:
    """The client is told to retry with its key (a 503 with Stripe-Should-Retry: true, not a
    429 saying nothing was done), nothing is looked up, and the retry with the key pays."""

    async def confirm() -> object:
        return await payments.create_payment_intent(
            call(account_id, "busy-1"),
            NewPaymentIntent(amount_minor=1000, currency="usd"),
            respond,
            confirm=ConfirmParams(payment_method_id="pm_visa"),
        )

    with pytest.raises(NotSentError) as refused:
        await confirm()
    assert (refused.value.kind, refused.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
    assert network.looked_up == []
    retried = await confirm()
    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
