"""Over gRPC (what the REST facade calls), an endpoint may name any event type Stripe documents,
as a configuration taken over from Stripe does; types remit never emits are never delivered, and
listing events of such a type finds none. A string that is no Stripe type is still refused,
naming where it was given."""

from typing import Any

import grpc
import pytest

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio

# An endpoint configured for Stripe today: a type remit emits, and two it never does, one
# Stripe documented by 2023 and one it added since.
FROM_STRIPE = ["payment_intent.succeeded", "invoice.paid", "invoice_payment.paid"]


def _metadata(bench: Bench) -> tuple[tuple[str, str], ...]:
    return ((ACCOUNT_KEY, bench.account_id),)


async def _refused(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    return caught.value.code(), detail.type, detail.param


async def test_an_endpoint_configured_for_stripe_is_created_and_updated_as_it_is(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub", start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver([Reply()])
    created = await stub.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(url=receiver.url, enabled_events=FROM_STRIPE),
        metadata=_metadata(bench),
    )
    endpoint = created.webhook_endpoint
    assert list(endpoint.enabled_events) == FROM_STRIPE
    updated = await stub.UpdateWebhookEndpoint(
        pb.UpdateWebhookEndpointRequest(
            id=endpoint.id, enabled_events=["customer.created", "invoice.payment_failed"]
        ),
        metadata=_metadata(bench),
    )
    assert list(updated.webhook_endpoint.enabled_events) == [
        "customer.created",
        "invoice.payment_failed",
    ]
    # The type remit emits is delivered; the other is simply never sent.
    event_id = await bench.record("customer.created")
    await bench.worker.drain()
    assert await bench.delivery_status(event_id, endpoint.id) == "succeeded"
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    ("enabled", "param"),
    [
        (["invoice.paid", "invoice.exploded"], "enabled_events[1]"),
        (["charge.exploded"], "enabled_events[0]"),
    ],
)
async def test_a_string_that_is_no_stripe_type_is_refused_naming_it(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub", enabled: list[str], param: str
) -> None:
    create = pb.CreateWebhookEndpointRequest(url="https://e.example/h", enabled_events=enabled)
    assert await _refused(stub.CreateWebhookEndpoint(create, metadata=_metadata(bench))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request_error",
        param,
    )
    endpoint = await bench.endpoint("https://e.example/h")
    update = pb.UpdateWebhookEndpointRequest(id=endpoint.id, enabled_events=enabled)
    assert await _refused(stub.UpdateWebhookEndpoint(update, metadata=_metadata(bench))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request_error",
        param,
    )


@pytest.mark.parametrize(
    "request_",
    [
        pb.ListEventsRequest(type="invoice.paid"),
        pb.ListEventsRequest(type="invoice_payment.paid"),
        pb.ListEventsRequest(type="invoice.*"),
        pb.ListEventsRequest(types=["invoice.paid", "customer.subscription.*"]),
        pb.ListEventsRequest(types=["billing.meter.*", "invoice.overdue"]),
    ],
)
async def test_listing_events_of_a_stripe_type_remit_never_emits_finds_none(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub", request_: pb.ListEventsRequest
) -> None:
    await bench.record("customer.created")
    listed = await stub.ListEvents(request_, metadata=_metadata(bench))
    assert (list(listed.data), listed.has_more) == ([], False)


async def test_listing_events_of_no_stripe_type_is_still_refused(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    request = pb.ListEventsRequest(types=["invoice.paid", "invoice.exploded"])
    assert await _refused(stub.ListEvents(request, metadata=_metadata(bench))) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request_error",
        "types",
    )
