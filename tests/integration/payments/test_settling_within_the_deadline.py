"""A payment whose caller's deadline is near sends nothing it could not see answered, and stops
looking up an operation whose outcome is unknown once its time is spent: either way it waits
at its recovery point, `attempt_created`, where the client's retry with the key (or the
completer) resumes it."""

from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.deadlines import deadline_in
from remit.grpcutil.errors import error_detail
from remit.payments.domain import PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.network import GrpcCardNetwork
from remit.payments.service import Done, PaymentsService
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_unopenable_card import _pay_again, _recovery_point
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


async def test_an_unknown_outcome_is_not_looked_up_past_the_callers_deadline(
    core_engine: AsyncEngine, account_id: str
) -> None:
    # The authorization reaches the network and its answer is lost; every look-up fails.
    network = FakeNetwork(faults=["after"], lookup_faults=100)
    payments = PaymentsService(core_engine, network, FakeMethods(), present=payment_intent_message)
    with deadline_in(1.5), pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "late")
    assert raised.value.kind is ErrorKind.UNAVAILABLE
    # Three look-ups of up to the network timeout each would have outlasted the caller.
    assert network.looked_up == []
    assert await _recovery_point(core_engine, "late") == RecoveryPoint.ATTEMPT_CREATED.value

    network.lookup_faults = 0
    resumed = await _pay_again(payments, account_id, "late")
    assert isinstance(resumed, Done)
    assert isinstance(resumed.value, PaymentIntent)
    assert resumed.value.status is Status.SUCCEEDED
    assert len(network.sent) == 1, "found by its look-up, not sent again"


class ApprovingVault(vault_pb2_grpc.VaultServiceServicer):
    def __init__(self) -> None:
        self.forwards = 0

    async def ForwardAuthorization(  # noqa: N802 (the RPC name)
        self, request: vault_pb2.ForwardAuthorizationRequest, context: Any
    ) -> vault_pb2.ForwardAuthorizationResponse:
        self.forwards += 1
        return vault_pb2.ForwardAuthorizationResponse()


async def test_a_send_without_the_time_it_needs_is_refused_before_the_vault_sees_it(
    core_engine: AsyncEngine, account_id: str
) -> None:
    vault = ApprovingVault()
    server = grpc.aio.server()
    vault_pb2_grpc.add_VaultServiceServicer_to_server(vault, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as vault_channel,
            grpc.aio.insecure_channel("127.0.0.1:9") as nowhere,
        ):
            network = GrpcCardNetwork(
                vault_pb2_grpc.VaultServiceStub(vault_channel),
                acquirer_pb2_grpc.AcquirerServiceStub(nowhere),
            )
            payments = PaymentsService(
                core_engine, network, FakeMethods(), present=payment_intent_message
            )
            # Less than the network timeout (10 s) and the vault's margin are left.
            with deadline_in(4.0), pytest.raises(RemitError) as raised:
                await pay(payments, account_id, "no-time")
    finally:
        await server.stop(0)
    error = raised.value
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.should_retry
    assert error_detail(error).http_status == 503
    assert vault.forwards == 0
    assert await _recovery_point(core_engine, "no-time") == RecoveryPoint.ATTEMPT_CREATED.value
