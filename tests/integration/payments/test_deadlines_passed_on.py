"""A call to the card network ends before the deadline of the call it serves: the core bounds
its call to the vault, and the vault its call to the acquirer, by the time their own caller
left them (less a margin to answer); the core sends nothing it has no time left to see
answered, and it stops looking an unknown outcome up when its time is spent."""

import asyncio
from typing import Any

import grpc
import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.core.secrets import Secret
from remit.grpcutil.deadlines import ANSWER_MARGIN_S, deadline_in, remaining_s
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.send_time import not_sent_for_lack_of_time
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import GrpcCardNetwork, OutcomeUnknownError
from remit.vault.domain import OutboundAuthorization, StoredCredential
from remit.vault.forwarding import GrpcAcquirerDestination
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer

pytestmark = pytest.mark.anyio

Context = grpc.aio.ServicerContext[Any, Any]
# gRPC's reading of a deadline can run a little past the timeout set (its clock is not the
# monotonic one); far less than any of the margins checked.
SKEW_S = 0.5
# What a caller leaves: less than the network timeout (10 s), so that what a call is given is
# cut to it, and far more than the margin to answer, so that a loaded machine's slowness before
# the call is sent never leaves it too little to be sent at all.
CALLER_LEFT_S = 8.0


class TimedAcquirer(RecordingAcquirer):
    """Notes the time each call was given (`context.time_remaining()`)."""

    def __init__(self) -> None:
        super().__init__()
        self.given: list[float | None] = []

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: Context
    ) -> acquirer_pb2.AuthorizeResponse:
        self.given.append(context.time_remaining())
        return await super().Authorize(request, context)

    async def LookupOperation(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.LookupOperationRequest, context: Context
    ) -> acquirer_pb2.LookupOperationResponse:
        self.given.append(context.time_remaining())
        return acquirer_pb2.LookupOperationResponse(
            operation=acquirer_pb2.Operation(
                id="op_1",
                reference=request.reference,
                kind=acquirer_pb2.OPERATION_KIND_REFUND,
                merchant_id="acct_1",
                currency="usd",
                amount=500,
                approved=True,
            )
        )


class TimedVault(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self) -> None:
        self.given: list[float | None] = []

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        self.given.append(context.time_remaining())
        return vault_pb2.ForwardAuthorizationResponse(
            result=vault_pb2.ForwardedAuthorization(approved=True, authorization_id="auth_1")
        )


async def _network(acquirer_target: str, vault: TimedVault) -> tuple[GrpcCardNetwork, Any]:
    server = grpc.aio.server()
    vault_pb2_grpc.add_VaultServiceServicer_to_server(vault, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    network = GrpcCardNetwork(
        vault_pb2_grpc.VaultServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{port}")),
        acquirer_pb2_grpc.AcquirerServiceStub(grpc.aio.insecure_channel(acquirer_target)),
    )
    return network, server


async def _authorize(network: GrpcCardNetwork) -> object:
    return await network.authorize(
        account_id="acct_1",
        vault_token="tok_1",
        amount_minor=1000,
        currency="usd",
        reference="ch_1",
        capture=True,
        purpose="a test",
    )


_A_REFUND = ExpectedOperation(
    kind=acquirer_pb2.OPERATION_KIND_REFUND, merchant_id="acct_1", currency="usd", amount_minor=500
)


@pytest.fixture
def short_network_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", "2")
    return 2.0


async def test_a_look_up_ends_before_the_callers_deadline() -> None:
    acquirer, vault = TimedAcquirer(), TimedVault()
    async with running_acquirer(acquirer) as (_, target):
        network, server = await _network(target, vault)
        try:
            with deadline_in(CALLER_LEFT_S):
                found = await network.lookup_operation("re_1", _A_REFUND)
        finally:
            await server.stop(0)
    assert found is not None
    assert found.approved
    [given] = acquirer.given
    # The network timeout (10 s) is cut to what the caller left, less the margin to answer.
    assert given is not None
    assert given <= CALLER_LEFT_S - ANSWER_MARGIN_S + SKEW_S


async def test_no_look_up_is_started_without_the_time_to_see_it_answered() -> None:
    acquirer, vault = TimedAcquirer(), TimedVault()
    async with running_acquirer(acquirer) as (_, target):
        network, server = await _network(target, vault)
        try:
            with deadline_in(ANSWER_MARGIN_S + 0.2), pytest.raises(OutcomeUnknownError):
                await network.lookup_operation("re_1", _A_REFUND)
        finally:
            await server.stop(0)
    assert acquirer.given == []
    assert network.breakers.lookups.state.value == "closed", "nothing was asked of the network"


async def test_an_authorization_is_not_sent_without_the_time_it_is_allowed() -> None:
    acquirer, vault = TimedAcquirer(), TimedVault()
    async with running_acquirer(acquirer) as (_, target):
        network, server = await _network(target, vault)
        try:
            # Less than the network timeout (10 s) and the vault's margin: refused, unsent.
            with deadline_in(5.0), pytest.raises(RemitError) as refused:
                await _authorize(network)
        finally:
            await server.stop(0)
    assert vault.given == []
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert refused.value.should_retry


async def test_an_authorization_with_the_time_it_needs_is_sent_bounded_by_it(
    short_network_timeout: float,
) -> None:
    acquirer, vault = TimedAcquirer(), TimedVault()
    async with running_acquirer(acquirer) as (_, target):
        network, server = await _network(target, vault)
        try:
            with deadline_in(30.0):
                outcome = await _authorize(network)
            without_deadline = await _authorize(network)
        finally:
            await server.stop(0)
    assert outcome == without_deadline
    # The vault is given the network timeout and its margin (2 s), no more: 4 s, not 29 s.
    assert all(given is not None and given <= 4.0 + SKEW_S for given in vault.given)


async def test_the_vault_gives_the_acquirer_no_more_than_its_own_caller_left() -> None:
    acquirer = TimedAcquirer()
    async with running_acquirer(acquirer) as (_, target):
        destination = GrpcAcquirerDestination(target)
        try:
            with deadline_in(CALLER_LEFT_S):
                await destination.authorize(
                    OutboundAuthorization(
                        reference="ch_1",
                        merchant_id="acct_1",
                        card_number=Secret("4242424242424242"),
                        exp_month=12,
                        exp_year=2034,
                        cvc=None,
                        amount_minor=1000,
                        currency="usd",
                        capture=True,
                        stored_credential=StoredCredential(),
                    )
                )
        finally:
            await destination.close()
    [given] = acquirer.given
    assert given is not None
    assert given <= CALLER_LEFT_S - ANSWER_MARGIN_S + SKEW_S


class DeadlineReporter(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self) -> None:
        self.seen: list[float | None] = []

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        await asyncio.sleep(0)
        self.seen.append(remaining_s())
        return vault_pb2.ForwardAuthorizationResponse()


async def test_a_served_calls_deadline_is_what_its_handler_reads() -> None:
    reporter = DeadlineReporter()
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    vault_pb2_grpc.add_VaultServiceServicer_to_server(reporter, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = vault_pb2_grpc.VaultServiceStub(channel)
            await stub.ForwardAuthorization(vault_pb2.ForwardAuthorizationRequest(), timeout=60)
            await stub.ForwardAuthorization(vault_pb2.ForwardAuthorizationRequest())
    finally:
        await server.stop(0)
    with_deadline, without = reporter.seen
    assert with_deadline is not None
    # The caller's 60 s, less the call's way to the handler (which a loaded machine stretches).
    assert 30.0 < with_deadline <= 60.0 + SKEW_S
    assert without is None


class VaultOutOfTime(vault_pb2_grpc.VaultServiceServicer):
    """Refuses every forward as the vault does when its caller's deadline is too near; or,
    `unmarked`, with the same status and no mark, as a forward cut off would end."""

    def __init__(self, *, unmarked: bool = False) -> None:
        self.unmarked = unmarked

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Context
    ) -> vault_pb2.ForwardAuthorizationResponse:
        if self.unmarked:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cut off")
        raise not_sent_for_lack_of_time(f"The authorization {request.reference}")


async def _authorize_through(
    vault: VaultOutOfTime, acquirer: TimedAcquirer
) -> tuple[GrpcCardNetwork, Exception]:
    """Authorize once through `vault`: the network it was sent on, and how it failed."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    vault_pb2_grpc.add_VaultServiceServicer_to_server(vault, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with running_acquirer(acquirer) as (_, target):
            network = GrpcCardNetwork(
                vault_pb2_grpc.VaultServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{port}")),
                acquirer_pb2_grpc.AcquirerServiceStub(grpc.aio.insecure_channel(target)),
            )
            try:
                await _authorize(network)
            except Exception as error:
                return network, error
    finally:
        await server.stop(0)
    raise AssertionError("the vault refused nothing")


async def test_a_forward_the_vault_had_no_time_to_send_is_answered_without_a_look_up() -> None:
    acquirer = TimedAcquirer()
    network, refused = await _authorize_through(VaultOutOfTime(), acquirer)
    # The core's own answer to its caller: retry, nothing was sent.
    assert isinstance(refused, RemitError)
    assert refused.kind is ErrorKind.UNAVAILABLE
    assert refused.should_retry
    assert refused.code is None
    assert acquirer.given == [], "nothing looked up at the acquirer"
    assert network.breakers.forwards.state.value == "closed", "the network was not at fault"


async def test_an_unavailable_vault_without_the_mark_leaves_the_outcome_unknown() -> None:
    _, failed = await _authorize_through(VaultOutOfTime(unmarked=True), TimedAcquirer())
    assert isinstance(failed, OutcomeUnknownError)
