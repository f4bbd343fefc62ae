"""A request the server cuts off as it stops (uvicorn cancels what outlasts its grace) answers
in Stripe's shape, inviting the retry, never uvicorn's bare text 500. The gRPC side is faked."""

import asyncio
from typing import Any, cast

from starlette.testclient import TestClient

from remit.accounts.domain import KeyKind, Principal
from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.auth import Authenticator
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Schema
from versions import LATEST_VERSION

KEY = "sk_test_" + "a" * 24


async def _cut_off(context: ApiContext, deps: Dependencies) -> JsonObject:
    raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")


def _client() -> TestClient:
    async def lookup(key: str) -> Principal | None:
        return Principal("acct_1", "key_1", KeyKind.SECRET, False, LATEST_VERSION, False)

    deps = Dependencies(
        core_channel=cast(Any, None),
        accounts=cast(Any, None),
        payments=cast(Any, None),
        authenticator=Authenticator(lookup),
        vault_channel=cast(Any, None),
        vault=cast(Any, None),
        webhooks=cast(Any, None),
        ledger=cast(Any, None),
        radar=cast(Any, None),
    )
    operations = [Operation("POST", "/v1/payment_intents/{intent}/confirm", Schema({}), _cut_off)]
    return TestClient(build_app(deps, operations))


def test_a_request_cut_off_by_shutdown_answers_a_retryable_stripe_error() -> None:
    response = _client().post(
        "/v1/payment_intents/pi_1/confirm", auth=(KEY, ""), headers={"Idempotency-Key": "k1"}
    )
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["stripe-should-retry"] == "true"
    assert response.headers["request-id"].startswith("req_")
    assert response.headers["idempotency-key"] == "k1"
    error = response.json()["error"]
    assert error["type"] == "api_error"
    assert "same idempotency key" in error["message"]
