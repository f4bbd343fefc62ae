"""An account has at most MAX_ENDPOINTS_PER_ACCOUNT webhook endpoints, as at Stripe: every event
adds a delivery and a job per endpoint in the transaction that records it (a payment's own),
and each is a POST to someone's server. Creations at once count one after the other."""

import asyncio

import grpc
import pytest

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.domain import MAX_ENDPOINTS_PER_ACCOUNT, WebhookEndpoint
from remit.webhooks.service import EndpointChanges, PageArgs, WebhooksError
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench

pytestmark = pytest.mark.anyio

URL = "http://127.0.0.1:9/hook"


async def _create(bench: Bench, count: int) -> list[WebhookEndpoint]:
    return [await bench.endpoint(URL) for _ in range(count)]


async def _count(bench: Bench, account_id: str | None = None) -> int:
    listed, _ = await bench.service.list_endpoints(
        account_id or bench.account_id, PageArgs(limit=100)
    )
    return len(listed)


async def test_an_endpoint_past_the_cap_is_refused_and_nothing_is_stored(bench: Bench) -> None:
    await _create(bench, MAX_ENDPOINTS_PER_ACCOUNT)
    with pytest.raises(WebhooksError) as refused:
        await bench.endpoint(URL)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    assert refused.value.error_type == "invalid_request_error"
    assert refused.value.param == "url"
    assert f"already has {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints" in str(refused.value)
    assert await _count(bench) == MAX_ENDPOINTS_PER_ACCOUNT


async def test_a_deleted_endpoint_frees_its_place_and_a_disabled_one_does_not(
    bench: Bench,
) -> None:
    created = await _create(bench, MAX_ENDPOINTS_PER_ACCOUNT)
    await bench.service.update_endpoint(
        bench.account_id, created[0].id, EndpointChanges(disabled=True)
    )
    with pytest.raises(WebhooksError):
        await bench.endpoint(URL)
    await bench.service.delete_endpoint(bench.account_id, created[1].id)
    await bench.endpoint(URL)
    assert await _count(bench) == MAX_ENDPOINTS_PER_ACCOUNT


async def test_the_cap_is_each_accounts_own(bench: Bench) -> None:
    await _create(bench, MAX_ENDPOINTS_PER_ACCOUNT)
    other = (await AccountsService(bench.engine, bench.clock).create_account()).account.id
    await bench.service.create_endpoint(other, url=URL, enabled_events=["*"])
    assert await _count(bench, other) == 1


async def test_creations_at_once_never_pass_the_cap(bench: Bench) -> None:
    """Each creation counts under the account's lock: none counts before another, at once,
    has stored its endpoint, and passes the cap with it."""
    existing, at_once = MAX_ENDPOINTS_PER_ACCOUNT - 4, 8
    await _create(bench, existing)
    outcomes = await asyncio.gather(
        *(bench.endpoint(URL) for _ in range(at_once)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(o, WebhooksError) for o in refused), refused
    assert (at_once - len(refused), len(refused)) == (4, 4)
    assert await _count(bench) == MAX_ENDPOINTS_PER_ACCOUNT


async def test_the_refusal_over_grpc_is_a_failed_precondition_on_url(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    await _create(bench, MAX_ENDPOINTS_PER_ACCOUNT)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url=URL, enabled_events=["*"]),
            metadata=((ACCOUNT_KEY, bench.account_id),),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.type, detail.param, detail.http_status) == ("invalid_request_error", "url", 400)
