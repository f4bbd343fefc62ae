"""An endpoint disabled for its URL (core migration 0051: a host aiohttp never connects to) is
enabled again only with a URL it can deliver to: enabling it as it is would start deliveries
that all fail at once, for three days, until it is disabled again as failing."""

import grpc
import pytest
from sqlalchemy import text

from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.service import EndpointChanges
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

NEVER_CONNECTED = "http://127.1/hook"
MENDED = "http://127.0.0.1/hook"


async def _disabled_for_its_url(bench: Bench) -> str:
    """An endpoint as the migration left it: saved before such URLs were refused."""
    endpoint = await bench.endpoint("https://hooks.example/hook")
    async with bench.engine.begin() as db:
        await db.execute(
            text(
                "UPDATE webhook_endpoints SET url = :url, status = 'disabled', "
                "disabled_reason = 'url_invalid' WHERE id = :id"
            ),
            {"url": NEVER_CONNECTED, "id": endpoint.id},
        )
    return endpoint.id


async def _state(bench: Bench, endpoint_id: str) -> tuple[str, str | None, str]:
    endpoint = await bench.service.get_endpoint(bench.account_id, endpoint_id)
    reason = endpoint.disabled_reason
    return endpoint.status.value, reason.value if reason else None, endpoint.url


async def test_enabling_it_as_it_is_fails_its_precondition_and_names_url(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.UpdateWebhookEndpoint(
            pb.UpdateWebhookEndpointRequest(id=endpoint_id, disabled=False, description="d"),
            metadata=((ACCOUNT_KEY, bench.account_id),),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.code, detail.param) == ("url_invalid", "url")
    assert NEVER_CONNECTED in detail.message
    # Nothing of the update was saved.
    endpoint = await bench.service.get_endpoint(bench.account_id, endpoint_id)
    assert endpoint.description is None
    assert await _state(bench, endpoint_id) == ("disabled", "url_invalid", NEVER_CONNECTED)


async def test_a_valid_url_enables_it_again(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    await bench.service.update_endpoint(bench.account_id, endpoint_id, EndpointChanges(url=MENDED))
    assert await _state(bench, endpoint_id) == ("enabled", None, MENDED)


async def test_a_valid_url_and_enabling_in_one_update_enable_it(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    changes = EndpointChanges(url=MENDED, disabled=False)
    await bench.service.update_endpoint(bench.account_id, endpoint_id, changes)
    assert await _state(bench, endpoint_id) == ("enabled", None, MENDED)


async def test_a_valid_url_with_disabling_leaves_it_disabled_by_its_owner(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    changes = EndpointChanges(url=MENDED, disabled=True)
    await bench.service.update_endpoint(bench.account_id, endpoint_id, changes)
    assert await _state(bench, endpoint_id) == ("disabled", "by_user", MENDED)
    enable = EndpointChanges(disabled=False)
    await bench.service.update_endpoint(bench.account_id, endpoint_id, enable)
    assert await _state(bench, endpoint_id) == ("enabled", None, MENDED)


async def test_disabling_it_again_keeps_it_disabled_for_its_url(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    disable = EndpointChanges(disabled=True)
    await bench.service.update_endpoint(bench.account_id, endpoint_id, disable)
    assert await _state(bench, endpoint_id) == ("disabled", "url_invalid", NEVER_CONNECTED)
    enable = EndpointChanges(disabled=False)
    with pytest.raises(RemitError) as refused:
        await bench.service.update_endpoint(bench.account_id, endpoint_id, enable)
    assert (refused.value.kind, refused.value.param) == (ErrorKind.FAILED_PRECONDITION, "url")


async def test_another_update_leaves_it_disabled(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    changes = EndpointChanges(description="kept off")
    await bench.service.update_endpoint(bench.account_id, endpoint_id, changes)
    assert await _state(bench, endpoint_id) == ("disabled", "url_invalid", NEVER_CONNECTED)


async def test_an_invalid_url_is_refused_and_leaves_it_disabled(bench: Bench) -> None:
    endpoint_id = await _disabled_for_its_url(bench)
    changes = EndpointChanges(url="http://2130706433/hook", disabled=False)
    with pytest.raises(RemitError) as refused:
        await bench.service.update_endpoint(bench.account_id, endpoint_id, changes)
    assert (refused.value.code, refused.value.param) == ("url_invalid", "url")
    assert await _state(bench, endpoint_id) == ("disabled", "url_invalid", NEVER_CONNECTED)
