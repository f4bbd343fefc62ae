"""EvaluateAttempt over real gRPC: a dry run refuses signals no payment can have."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.radar.grpc import RadarServicer
from remit.radar.service import RadarService
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.radar.v1 import radar_pb2_grpc

pytestmark = pytest.mark.anyio


@pytest.fixture
async def stub(core_engine: AsyncEngine) -> AsyncIterator[radar_pb2_grpc.RadarServiceAsyncStub]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    servicer = RadarServicer(RadarService(core_engine))
    radar_pb2_grpc.add_RadarServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield radar_pb2_grpc.RadarServiceStub(channel)
    finally:
        await server.stop(0)


@pytest.fixture
async def metadata(core_engine: AsyncEngine) -> tuple[tuple[str, str], ...]:
    account = (await AccountsService(core_engine).create_account()).account
    return ((ACCOUNT_KEY, account.id),)


async def test_a_negative_amount_is_an_invalid_argument(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    request = rpb.EvaluateAttemptRequest(signals=rpb.AttemptSignals(amount=-200, currency="usd"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.EvaluateAttempt(request, metadata=metadata)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount" in (refused.value.details() or "")


async def test_an_ordinary_attempt_is_scored(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    for amount in (0, 5000):
        request = rpb.EvaluateAttemptRequest(
            signals=rpb.AttemptSignals(amount=amount, currency="usd")
        )
        response = await stub.EvaluateAttempt(request, metadata=metadata)
        assert 0 <= response.risk_score <= 99
        assert response.action == rpb.RULE_ACTION_ALLOW
