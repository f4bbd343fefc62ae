"""A half-open breaker's probe whose caller is cancelled mid-call (the client's deadline ran
out, so gRPC cancelled the core's handler) must not keep the probe claimed: otherwise every
later call to the network in the process is refused as "not responding", even once the
acquirer answers again."""

import asyncio
from typing import Any

import grpc
import pytest

from remit.core.ids import new_id
from remit.payments.breaker import BreakerState, CircuitBreaker, NetworkBreakers
from remit.payments.network import GrpcCardNetwork
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2_grpc
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer

pytestmark = pytest.mark.anyio


class StallingVoids(RecordingAcquirer):
    """Voids hang until `answer` is set; each one received is counted in `voids`."""

    def __init__(self) -> None:
        super().__init__()
        self.received = asyncio.Event()
        self.answer = asyncio.Event()
        self.voids = 0

    async def Void(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.VoidRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.VoidResponse:
        self.voids += 1
        self.received.set()
        await self.answer.wait()
        return acquirer_pb2.VoidResponse(
            operation=acquirer_pb2.Operation(id=new_id("op"), approved=True)
        )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_cancelled_probe_does_not_keep_the_breaker_refusing_calls() -> None:
    acquirer = StallingVoids()
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5, now=clock)
    async with (
        running_acquirer(acquirer) as (_, target),
        grpc.aio.insecure_channel(target) as channel,
        grpc.aio.insecure_channel("127.0.0.1:9") as nowhere,
    ):
        network = GrpcCardNetwork(
            vault_pb2_grpc.VaultServiceStub(nowhere),
            acquirer_pb2_grpc.AcquirerServiceStub(channel),
            NetworkBreakers(operations=breaker),
        )
        breaker.record_failure()
        clock.now = 5.0
        assert breaker.state is BreakerState.HALF_OPEN

        probe = asyncio.create_task(network.void(authorization_id="auth_1", reference="ch_1"))
        await acquirer.received.wait()
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe

        # The acquirer answers again; the next call is the new probe and closes the breaker.
        acquirer.answer.set()
        outcome = await network.void(authorization_id="auth_1", reference="ch_1")
    assert outcome.approved
    assert acquirer.voids == 2
    assert breaker.state.value == "closed"
