"""A host yarl parses but the resolver never looks up (a label over 63 characters, an empty
label): refused when an endpoint is saved, and, saved before that was so, each delivery to it
is a failed attempt of the endpoint's, recorded, retried and counted towards disabling it, not
an error of the delivery job (nor an INTERNAL answer to a resend)."""

import grpc
import pytest
from sqlalchemy import text

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.domain import DisabledReason, EndpointStatus
from remit.webhooks.repository import DeliveryRepository
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

LONG_LABEL = "https://" + "a" * 64 + ".example.com/h"
EMPTY_LABEL = "https://a..b.com/h"


def _assert_url_invalid(caught: grpc.aio.AioRpcError) -> None:
    assert caught.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught)
    assert detail is not None
    assert (detail.code, detail.param) == ("url_invalid", "url")
    assert "not a valid host name" in detail.message


@pytest.mark.parametrize("url", [LONG_LABEL, EMPTY_LABEL])
async def test_creating_an_endpoint_with_such_a_host_is_refused(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub", url: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url=url, enabled_events=["*"]),
            metadata=((ACCOUNT_KEY, bench.account_id),),
        )
    _assert_url_invalid(caught.value)


@pytest.mark.parametrize("url", [LONG_LABEL, EMPTY_LABEL])
async def test_updating_an_endpoint_to_such_a_host_is_refused(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub", url: str
) -> None:
    endpoint = await bench.endpoint("https://hooks.example/h")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateWebhookEndpoint(
            pb.UpdateWebhookEndpointRequest(id=endpoint.id, url=url),
            metadata=((ACCOUNT_KEY, bench.account_id),),
        )
    _assert_url_invalid(caught.value)
    saved = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert saved.url == "https://hooks.example/h"


async def _saved_before_refused(bench: Bench, url: str) -> str:
    endpoint = await bench.endpoint("https://hooks.example/h")
    async with bench.engine.begin() as db:
        await db.execute(
            text("UPDATE webhook_endpoints SET url = :url WHERE id = :id"),
            {"url": url, "id": endpoint.id},
        )
    return endpoint.id


async def _follow_schedule(bench: Bench, event_id: str, endpoint_id: str) -> None:
    """`Bench.follow_schedule`, for a bounded number of runs: a delivery job that raises
    leaves its delivery's retry where it was, which that would follow for ever."""
    for _ in range(30):
        await bench.worker.drain()
        async with bench.engine.connect() as db:
            delivery = await DeliveryRepository(db).get(bench.account_id, event_id, endpoint_id)
        assert delivery is not None
        if delivery.next_attempt_at is None:
            return
        bench.clock.advance(
            max(60.0, (delivery.next_attempt_at - bench.clock.now()).total_seconds())
        )


@pytest.mark.parametrize("url", [LONG_LABEL, EMPTY_LABEL])
async def test_deliveries_to_a_saved_one_are_failed_attempts_until_it_is_disabled(
    bench: Bench, url: str
) -> None:
    endpoint_id = await _saved_before_refused(bench, url)
    event_id = await bench.record()
    await _follow_schedule(bench, event_id, endpoint_id)

    assert await bench.delivery_status(event_id, endpoint_id) == "failed"
    attempts = await bench.attempts(event_id)
    assert len(attempts) >= 9
    for attempt in attempts:
        assert attempt.http_status is None
        assert attempt.error is not None
        assert attempt.error.startswith("invalid URL: UnicodeError"), attempt.error
    endpoint = await bench.service.get_endpoint(bench.account_id, endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason) == (
        EndpointStatus.DISABLED,
        DisabledReason.FAILING,
    )


async def test_a_resend_to_a_saved_one_answers_with_its_failed_attempt(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    endpoint_id = await _saved_before_refused(bench, LONG_LABEL)
    event_id = await bench.record()
    reply = await stub.ResendEvent(
        pb.ResendEventRequest(event=event_id, webhook_endpoint=endpoint_id),
        metadata=((ACCOUNT_KEY, bench.account_id),),
    )
    attempt = reply.delivery_attempt
    assert not attempt.HasField("http_status")
    assert not attempt.succeeded
    assert attempt.error.startswith("invalid URL: UnicodeError")
