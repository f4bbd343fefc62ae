"""An endpoint names at most MAX_ENABLED_EVENTS event types, each counted once however often
it is given: over gRPC as on the REST API, where the schema refuses the same lists in the
same words. An endpoint stored with more before the limit stays readable and updatable."""

from dataclasses import replace

import grpc
import pytest

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.rest.forms import FormValue
from remit.rest.params import ParamError
from remit.rest.resources import webhook_endpoints
from remit.webhooks.event_types import ACCEPTED_EVENT_TYPES, MAX_ENABLED_EVENTS
from remit.webhooks.repository import EndpointRepository
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9/hook"
TYPES = sorted(ACCEPTED_EVENT_TYPES)
TOO_MANY = (
    f"Invalid array: enabled_events can have at most {MAX_ENABLED_EVENTS} distinct items, "
    f"but {MAX_ENABLED_EVENTS + 1} were given."
)


def _account(bench: Bench) -> tuple[tuple[str, str], ...]:
    return ((ACCOUNT_KEY, bench.account_id),)


async def test_a_create_past_the_limit_is_invalid_argument_on_enabled_events(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(
                url=URL, enabled_events=TYPES[: MAX_ENABLED_EVENTS + 1]
            ),
            metadata=_account(bench),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.type, detail.param, detail.http_status) == (
        "invalid_request_error",
        "enabled_events",
        400,
    )
    assert detail.message == TOO_MANY


async def test_duplicates_count_once(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    given = [*TYPES[:MAX_ENABLED_EVENTS], TYPES[0]]
    created = await stub.CreateWebhookEndpoint(
        pb.CreateWebhookEndpointRequest(url=URL, enabled_events=given),
        metadata=_account(bench),
    )
    assert list(created.webhook_endpoint.enabled_events) == TYPES[:MAX_ENABLED_EVENTS]


async def test_an_update_past_the_limit_is_refused_and_changes_nothing(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    endpoint = await bench.endpoint(URL)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateWebhookEndpoint(
            pb.UpdateWebhookEndpointRequest(
                id=endpoint.id, enabled_events=TYPES[: MAX_ENABLED_EVENTS + 1]
            ),
            metadata=_account(bench),
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.param, detail.message) == ("enabled_events", TOO_MANY)
    stored = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    assert list(stored.enabled_events) == ["*"]


async def test_an_endpoint_stored_with_more_is_read_and_updated_without_naming_them(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    many = tuple(TYPES[: MAX_ENABLED_EVENTS + 50])
    endpoint = replace(await bench.endpoint(URL), enabled_events=many)
    async with bench.engine.begin() as db:
        await EndpointRepository(db).save(endpoint)

    got = await stub.GetWebhookEndpoint(
        pb.GetWebhookEndpointRequest(id=endpoint.id), metadata=_account(bench)
    )
    updated = await stub.UpdateWebhookEndpoint(
        pb.UpdateWebhookEndpointRequest(id=endpoint.id, description="kept", metadata={"k": "v"}),
        metadata=_account(bench),
    )

    assert tuple(got.webhook_endpoint.enabled_events) == many
    assert tuple(updated.webhook_endpoint.enabled_events) == many
    assert updated.webhook_endpoint.description == "kept"


def _form(types: list[str]) -> FormValue:
    return list[FormValue](types)


def test_the_rest_schema_refuses_the_same_lists_in_the_same_words() -> None:
    field = webhook_endpoints.CREATE.fields["enabled_events"]
    given = [*TYPES[:MAX_ENABLED_EVENTS], TYPES[0]]
    assert field.parse(_form(given), "enabled_events") == given
    for schema in (webhook_endpoints.CREATE, webhook_endpoints.UPDATE):
        with pytest.raises(ParamError) as refused:
            schema.fields["enabled_events"].parse(
                _form(TYPES[: MAX_ENABLED_EVENTS + 1]), "enabled_events"
            )
        assert (refused.value.code, refused.value.param, refused.value.message) == (
            "parameter_invalid",
            "enabled_events",
            TOO_MANY,
        )
