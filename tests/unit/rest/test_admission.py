"""Past its bound of requests in progress, an api process answers at once, as Stripe answers
overload (429 `rate_limit`, Stripe's JSON), rather than queueing every request until all are
as slow as the REST deadline. The health check is outside the bound."""

import asyncio
from typing import Any

import httpx
import pytest

from remit.accounts.domain import Principal
from remit.rest.app import build_app
from remit.rest.errors import StripeError
from remit.rest.routes import all_operations
from tests.support.rest_facade import faked_dependencies

pytestmark = pytest.mark.anyio

KEY = {"Authorization": "Bearer sk_test_busy"}


def _app(lookup: Any, max_in_flight: int | None) -> Any:
    deps = faked_dependencies(lookup)
    return build_app(deps, all_operations(), max_in_flight=max_in_flight)


async def test_requests_past_the_bound_are_refused_at_once_in_stripes_shape() -> None:
    release = asyncio.Event()
    looking_up = asyncio.Event()

    async def slow_lookup(_key: str) -> Principal | None:
        # A request in progress: its key is being looked up.
        looking_up.set()
        await release.wait()
        return None

    app = _app(slow_lookup, max_in_flight=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        first = asyncio.ensure_future(client.get("/v1/payment_intents", headers=KEY))
        await asyncio.wait_for(looking_up.wait(), 30)

        refused = await asyncio.wait_for(client.get("/v1/customers", headers=KEY), 30)
        assert refused.status_code == 429
        assert refused.json() == StripeError.rate_limited().to_body()
        assert refused.headers["Request-Id"].startswith("req_")
        assert "Stripe-Should-Retry" not in refused.headers

        health = await asyncio.wait_for(client.get("/healthz"), 30)
        assert health.status_code == 200

        release.set()
        assert (await first).status_code == 401
        # Its place is free again.
        assert (await client.get("/v1/customers", headers=KEY)).status_code == 401


async def test_the_default_bound_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REMIT_API_MAX_IN_FLIGHT", "2")
    release = asyncio.Event()
    in_progress = 0
    both = asyncio.Event()

    async def slow_lookup(_key: str) -> Principal | None:
        nonlocal in_progress
        in_progress += 1
        if in_progress == 2:
            both.set()
        await release.wait()
        return None

    app = _app(slow_lookup, max_in_flight=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        held = [
            asyncio.ensure_future(client.get("/v1/customers", headers={"Authorization": key}))
            for key in ("Bearer sk_test_a", "Bearer sk_test_b")
        ]
        await asyncio.wait_for(both.wait(), 30)
        refused = await asyncio.wait_for(client.get("/v1/customers", headers=KEY), 30)
        assert refused.status_code == 429
        release.set()
        assert [(await request).status_code for request in held] == [401, 401]


async def test_a_refusal_carries_the_headers_of_every_other_error() -> None:
    """The 429 echoes the request's Idempotency-Key (a malformed one is not echoed) and its
    Stripe-Version, as any other error of the facade does, with a Request-Id."""
    release = asyncio.Event()
    looking_up = asyncio.Event()

    async def slow_lookup(_key: str) -> Principal | None:
        looking_up.set()
        await release.wait()
        return None

    app = _app(slow_lookup, max_in_flight=1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        first = asyncio.ensure_future(client.get("/v1/payment_intents", headers=KEY))
        await asyncio.wait_for(looking_up.wait(), 30)
        refused = await asyncio.wait_for(
            client.post(
                "/v1/customers",
                headers={**KEY, "Idempotency-Key": "key-1", "Stripe-Version": "2020-08-27"},
            ),
            30,
        )
        malformed = await asyncio.wait_for(
            client.post("/v1/customers", headers={**KEY, "Idempotency-Key": "k" * 300}), 30
        )
        release.set()
        await first
    assert refused.status_code == 429
    assert refused.headers["Idempotency-Key"] == "key-1"
    assert refused.headers["Stripe-Version"] == "2020-08-27"
    assert refused.headers["Request-Id"].startswith("req_")
    assert "Stripe-Should-Retry" not in refused.headers
    assert malformed.status_code == 429
    assert "Idempotency-Key" not in malformed.headers
