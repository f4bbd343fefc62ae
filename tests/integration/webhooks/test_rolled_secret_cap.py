"""Every old secret still signing adds a `v1=` to each delivery's Stripe-Signature header: a roll
that would keep more than MAX_SIGNING_ROLLED_SECRETS of them signing is refused, so that many
rolls within a secret's lifetime cannot grow the header past what servers accept."""

from datetime import timedelta

import grpc
import pytest

from remit.core.errors import ErrorKind
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.webhooks.domain import MAX_SIGNING_ROLLED_SECRETS, OLD_SECRET_DEFAULT_LIFETIME
from remit.webhooks.service import WebhooksError
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.integration.webhooks.conftest import Bench, StartReceiver

pytestmark = pytest.mark.anyio


async def _roll_to_the_cap(bench: Bench, endpoint_id: str) -> None:
    for _ in range(MAX_SIGNING_ROLLED_SECRETS):
        await bench.service.roll_secret(bench.account_id, endpoint_id)
        bench.clock.advance(60)


async def test_a_roll_past_the_cap_is_refused_and_changes_nothing(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver()
    endpoint = await bench.endpoint(receiver.url)
    await _roll_to_the_cap(bench, endpoint.id)
    at_the_cap = await bench.service.get_endpoint(bench.account_id, endpoint.id)
    with pytest.raises(WebhooksError) as refused:
        await bench.service.roll_secret(bench.account_id, endpoint.id)
    assert refused.value.kind is ErrorKind.FAILED_PRECONDITION
    assert refused.value.param == "expire_old_secret_after"
    assert f"already has {MAX_SIGNING_ROLLED_SECRETS} old signing secrets" in str(refused.value)
    assert await bench.service.get_endpoint(bench.account_id, endpoint.id) == at_the_cap

    await bench.record()
    await bench.worker.drain()
    header = receiver.received[0].headers["Stripe-Signature"]
    assert header.count("v1=") == MAX_SIGNING_ROLLED_SECRETS + 1


async def test_a_roll_that_retires_the_current_secret_at_once_is_taken_at_the_cap(
    bench: Bench,
) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    await _roll_to_the_cap(bench, endpoint.id)
    rolled, _ = await bench.service.roll_secret(
        bench.account_id, endpoint.id, expire_old_after=timedelta(0)
    )
    assert len(rolled.signing_secrets(bench.clock.now())) == MAX_SIGNING_ROLLED_SECRETS + 1


async def test_a_roll_is_taken_again_once_an_old_secret_expired(bench: Bench) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    await _roll_to_the_cap(bench, endpoint.id)
    # The first roll's old secret expires (the clock stands a minute past each roll); the
    # others still sign.
    past_the_first = OLD_SECRET_DEFAULT_LIFETIME - timedelta(minutes=MAX_SIGNING_ROLLED_SECRETS)
    bench.clock.advance(past_the_first.total_seconds())
    rolled, _ = await bench.service.roll_secret(bench.account_id, endpoint.id)
    assert len(rolled.signing_secrets(bench.clock.now())) == MAX_SIGNING_ROLLED_SECRETS + 1


async def test_the_refusal_over_grpc_is_a_failed_precondition(
    bench: Bench, stub: "webhooks_pb2_grpc.WebhooksServiceAsyncStub"
) -> None:
    endpoint = await bench.endpoint("http://127.0.0.1:9/hook")
    await _roll_to_the_cap(bench, endpoint.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RollWebhookEndpointSecret(
            pb.RollWebhookEndpointSecretRequest(id=endpoint.id),
            metadata=((ACCOUNT_KEY, bench.account_id),),
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "expire_old_secret_after"
