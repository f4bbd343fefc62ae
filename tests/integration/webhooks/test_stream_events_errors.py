"""StreamEvents, the one streaming RPC, refuses a bad request as precisely as any unary call:
the same pre-checks (bytes that are no request, a NUL in its text), the same status codes with
an ErrorDetail, and nothing of the database's text (SQL, parameters) in what the caller reads.
And a stream that is let through still hands out each event as it commits."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc
import pytest

from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.grpc import WebhooksServicer
from remit.webhooks.stream import EventNotifier
from remit.worker.runner import libpq_url
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

STREAM_METHOD = "/remit_api.webhooks.v1.WebhooksService/StreamEvents"


@pytest.fixture
async def channel(bench: Bench) -> AsyncIterator[grpc.aio.Channel]:
    notifier = EventNotifier(libpq_url(bench.engine.url.render_as_string(hide_password=False)))
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(
        WebhooksServicer(bench.service, notifier), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    opened = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield opened
    finally:
        await opened.close()
        await server.stop(0)
        await notifier.close()


def _stub(channel: grpc.aio.Channel) -> Any:
    return webhooks_pb2_grpc.WebhooksServiceStub(channel)


async def _refusal(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in call:
            pass
    return refused.value


def _metadata(bench: Bench) -> tuple[tuple[str, str], ...]:
    return ((ACCOUNT_KEY, bench.account_id),)


async def test_an_unknown_event_type_is_an_invalid_argument_naming_types(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    request = pb.StreamEventsRequest(types=["charge.exploded"])
    refused = await _refusal(_stub(channel).StreamEvents(request, metadata=_metadata(bench)))
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert (detail.type, detail.param) == ("invalid_request_error", "types")


async def test_an_unknown_starting_event_is_not_found(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    request = pb.StreamEventsRequest(starting_after="evt_unknown")
    refused = await _refusal(_stub(channel).StreamEvents(request, metadata=_metadata(bench)))
    assert refused.code() is grpc.StatusCode.NOT_FOUND
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert (detail.code, detail.param) == ("resource_missing", "starting_after")


async def test_a_call_naming_no_account_is_refused_as_a_unary_one_is(
    channel: grpc.aio.Channel,
) -> None:
    stub = _stub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.ListEvents(pb.ListEventsRequest())
    streamed = await _refusal(stub.StreamEvents(pb.StreamEventsRequest()))
    assert streamed.code() is unary.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert detail_from_rpc_error(streamed) is not None


async def test_a_nul_is_an_invalid_argument_that_shows_no_sql(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    request = pb.StreamEventsRequest(starting_after="evt_\x00x")
    refused = await _refusal(_stub(channel).StreamEvents(request, metadata=_metadata(bench)))
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert detail.param == "starting_after"
    for database_words in ("SELECT", "%(", "evt_"):
        assert database_words not in (refused.details() or "")


async def test_bytes_that_are_no_request_are_an_invalid_argument(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(STREAM_METHOD)
    refused = await _refusal(call(b"\xff\xff\xff", metadata=_metadata(bench)))
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stream_hands_out_the_session_and_then_each_event_as_it_commits(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    call = _stub(channel).StreamEvents(pb.StreamEventsRequest(), metadata=_metadata(bench))
    replies = call.__aiter__()
    try:
        first = await asyncio.wait_for(anext(replies), timeout=10)
        assert first.HasField("session")
        # By the service's clock (the core's is the database's), as the events' times are.
        assert first.session.created.ToDatetime(tzinfo=UTC) == bench.clock.now()
        event_id = await bench.record("customer.created")
        second = await asyncio.wait_for(anext(replies), timeout=10)
        assert second.event.id == event_id
    finally:
        call.cancel()


async def test_a_stream_may_filter_on_a_stripe_type_remit_never_emits(
    bench: Bench, channel: grpc.aio.Channel
) -> None:
    """As the listing does: the filter is let through, and that type's events never come."""
    request = pb.StreamEventsRequest(types=["invoice.paid", "customer.*"])
    call = _stub(channel).StreamEvents(request, metadata=_metadata(bench))
    replies = call.__aiter__()
    try:
        first = await asyncio.wait_for(anext(replies), timeout=10)
        assert first.HasField("session")
        event_id = await bench.record("customer.created")
        second = await asyncio.wait_for(anext(replies), timeout=10)
        assert second.event.id == event_id
    finally:
        call.cancel()
