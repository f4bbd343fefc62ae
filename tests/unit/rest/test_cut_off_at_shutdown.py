"""A request the server cuts off as it stops (uvicorn cancels what outlasts its grace) answers
in Stripe's shape, inviting the retry, never uvicorn's bare text 500. A request cancelled while
the server is not stopping (its client went away) answers nothing. The gRPC side is faked."""

import asyncio
import logging
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.types import Message

from remit.core.jsonview import JsonObject
from remit.rest.app import Operation, build_app
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.params import Schema
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

KEY = "sk_test_" + "a" * 24


async def _cut_off(context: ApiContext, deps: Dependencies) -> JsonObject:
    raise asyncio.CancelledError("Task cancelled, timeout graceful shutdown exceeded")


def _app(stopping: asyncio.Event) -> Any:
    deps = faked_dependencies(every_key_is_a_secret_key)
    operations = [Operation("POST", "/v1/payment_intents/{intent}/confirm", Schema({}), _cut_off)]
    return build_app(deps, operations, stopping=stopping)


def test_a_request_cut_off_by_shutdown_answers_a_retryable_stripe_error() -> None:
    stopping = asyncio.Event()
    stopping.set()
    response = TestClient(_app(stopping)).post(
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


@pytest.mark.anyio
async def test_a_request_cancelled_after_its_client_left_answers_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO, "remit.rest.app"), pytest.raises(asyncio.CancelledError):
        await _app(asyncio.Event())(_SCOPE, receive, send)
    assert sent == []
    assert "the client disconnected; no answer is sent" in caplog.text
    assert "cut off by the server stopping" not in caplog.text


@pytest.mark.anyio
async def test_a_client_gone_before_sending_its_body_is_no_error_of_remits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    with caplog.at_level(logging.INFO, "remit.rest.app"):
        await _app(asyncio.Event())(_SCOPE, receive, send)
    assert "the client disconnected before sending its body" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


_SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/payment_intents/pi_1/confirm",
    "raw_path": b"/v1/payment_intents/pi_1/confirm",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"host", b"api")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 2),
}
