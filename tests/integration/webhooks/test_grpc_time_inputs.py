"""The webhooks gRPC API refuses a Timestamp or Duration a datetime cannot hold as an invalid
argument naming the field: it is the caller's bad input, not an internal error."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.grpc import WebhooksServicer
from remit.webhooks.stream import EventNotifier
from remit_api.common.v1 import common_pb2
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

# A valid int64 of seconds, past the year 9999 a datetime ends at.
BEYOND_YEAR_9999 = timestamp_pb2.Timestamp(seconds=10**12)

Stub = webhooks_pb2_grpc.WebhooksServiceStub


@pytest.fixture
async def stub(bench: Bench) -> AsyncIterator[Stub]:
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
        WebhooksServicer(bench.service, EventNotifier("postgresql://unused")), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Stub(channel)
    finally:
        await channel.close()
        await server.stop(0)


# Per parameter: the method called and its request, given the stub and an endpoint id.
CALLS: dict[str, Callable[[Stub, str], tuple[Callable[..., Any], Message]]] = {
    "created[gte]": lambda stub, endpoint_id: (
        stub.ListEvents,
        pb.ListEventsRequest(created=common_pb2.CreatedFilter(gte=BEYOND_YEAR_9999)),
    ),
    "since": lambda stub, endpoint_id: (
        stub.RedeliverFailedEvents,
        pb.RedeliverFailedEventsRequest(webhook_endpoint=endpoint_id, since=BEYOND_YEAR_9999),
    ),
    "expire_old_secret_after": lambda stub, endpoint_id: (
        stub.RollWebhookEndpointSecret,
        pb.RollWebhookEndpointSecretRequest(
            id=endpoint_id, expire_old_secret_after=duration_pb2.Duration(seconds=10**17)
        ),
    ),
}


@pytest.mark.parametrize("param", sorted(CALLS))
async def test_a_time_a_datetime_cannot_hold_is_an_invalid_argument(
    bench: Bench, stub: Stub, param: str
) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    method, request = CALLS[param](stub, endpoint.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await method(request, metadata=((ACCOUNT_KEY, bench.account_id),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == param
