"""Every gRPC call that sets metadata holds it to Stripe's limits, as the payments calls do: a
key over 40 characters is an invalid argument naming `metadata`, whoever the caller."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.ledger.grpc import LedgerServicer
from remit.ledger.service import LedgerService
from remit.radar.grpc import RadarServicer
from remit.radar.service import RadarService
from remit.webhooks.grpc import WebhooksServicer
from remit.webhooks.stream import EventNotifier
from remit_api.ledger.v1 import ledger_pb2 as lpb
from remit_api.ledger.v1 import ledger_pb2_grpc
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.radar.v1 import radar_pb2_grpc
from remit_api.webhooks.v1 import webhooks_pb2 as wpb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

TOO_LONG = {"k" * 41: "v"}


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.ledger = ledger_pb2_grpc.LedgerServiceStub(channel)
        self.webhooks = webhooks_pb2_grpc.WebhooksServiceStub(channel)
        self.radar = radar_pb2_grpc.RadarServiceStub(channel)


@pytest.fixture
async def stubs(bench: Bench) -> AsyncIterator[Stubs]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    ledger_pb2_grpc.add_LedgerServiceServicer_to_server(
        LedgerServicer(LedgerService(bench.engine)), server
    )
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
        WebhooksServicer(bench.service, EventNotifier("postgresql://unused")), server
    )
    radar_pb2_grpc.add_RadarServiceServicer_to_server(
        RadarServicer(RadarService(bench.engine)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Stubs(channel)
    finally:
        await channel.close()
        await server.stop(0)


# Per RPC: the method called and its request, given the stubs and an endpoint id.
CALLS: dict[str, Callable[[Stubs, str], tuple[Callable[..., Any], Message]]] = {
    "CreatePayout": lambda stubs, _: (
        stubs.ledger.CreatePayout,
        lpb.CreatePayoutRequest(amount=100, currency="usd", metadata=TOO_LONG),
    ),
    "UpdatePayout": lambda stubs, _: (
        stubs.ledger.UpdatePayout,
        lpb.UpdatePayoutRequest(id="po_unknown", metadata=TOO_LONG),
    ),
    "CreateWebhookEndpoint": lambda stubs, _: (
        stubs.webhooks.CreateWebhookEndpoint,
        wpb.CreateWebhookEndpointRequest(
            url="http://127.0.0.1:9/hook", enabled_events=["*"], metadata=TOO_LONG
        ),
    ),
    "UpdateWebhookEndpoint": lambda stubs, endpoint_id: (
        stubs.webhooks.UpdateWebhookEndpoint,
        wpb.UpdateWebhookEndpointRequest(id=endpoint_id, metadata=TOO_LONG),
    ),
    "CreateValueList": lambda stubs, _: (
        stubs.radar.CreateValueList,
        rpb.CreateValueListRequest(alias="blocked", name="Blocked", metadata=TOO_LONG),
    ),
}


@pytest.mark.parametrize("rpc", sorted(CALLS))
async def test_a_metadata_key_over_40_characters_is_refused(
    bench: Bench, stubs: Stubs, rpc: str
) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    method, request = CALLS[rpc](stubs, endpoint.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request, metadata=((ACCOUNT_KEY, bench.account_id),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "metadata"
    assert "longer than 40 characters" in detail.message
