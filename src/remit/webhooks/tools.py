"""Developer tooling over the core's gRPC API: `remit listen`, `remit trigger`, and
`remit webhooks endpoints | resend | redeliver | roll-secret`.

Every command acts for one account, named by `--api-key sk_test_...` or, by default, the default
test account that `remit serve` keeps in the data directory.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TextIO

import aiohttp
import grpc
from google.protobuf import duration_pb2

from remit.command_exits import CommandRefusedError, CommandTemporaryFailureError
from remit.config import PlatformConfig
from remit.core.jsonview import to_json
from remit.grpcutil.call_failures import (
    call_failed,
    call_failure_is_temporary,
    describe_call_failure,
)
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.grpcutil.metadata import ACCOUNT_KEY, KEY_ID_KEY
from remit.grpcutil.protoconv import timestamp
from remit.supervisor import read_default_account
from remit.webhooks.delivery import encode_payload
from remit.webhooks.domain import disabled_message
from remit.webhooks.sender import WebhookSender
from remit.webhooks.signing import signature_header
from remit.webhooks.urls import UrlPolicy
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from versions import LATEST_VERSION

Metadata = tuple[tuple[str, str], ...]


class ToolError(CommandRefusedError):
    """A problem to print for the user, in one line without a traceback (exit 2)."""


def api_key_for(config: PlatformConfig, given: str | None) -> str:
    if given:
        return given
    saved = read_default_account(config.data_dir)
    if saved is None:
        raise ToolError(
            f"no --api-key given and no default account in {config.data_dir} (`remit serve` "
            "makes one on an embedded core database, or with --default-account); pass "
            "--api-key sk_test_..."
        )
    return saved["secret_key"]


async def account_metadata(channel: grpc.aio.Channel, api_key: str) -> Metadata:
    """The metadata that makes a call act for the account of `api_key`. The core refusing the
    key is a ToolError; its other failures are left to the caller, who knows its address."""
    try:
        reply = await accounts_pb2_grpc.AccountsServiceStub(channel).AuthenticateApiKey(
            accounts_pb2.AuthenticateApiKeyRequest(key=api_key), timeout=10
        )
    except grpc.aio.AioRpcError as error:
        if error.code() is grpc.StatusCode.UNAUTHENTICATED:
            raise ToolError(f"could not authenticate the API key: {error.details()}") from None
        raise
    # The key's id (never the key) names who asked, in Radar's history of changes.
    return ((ACCOUNT_KEY, reply.account_id), (KEY_ID_KEY, reply.key_id))


# --- remit listen ---------------------------------------------------------------------------


async def listen(
    config: PlatformConfig,
    *,
    api_key: str,
    forward_to: str,
    types: Sequence[str] = (),
    out: TextIO = sys.stdout,
) -> int:
    """Print a signing secret, then forward each of the account's events to `forward_to`,
    signed with it, until interrupted."""
    # Forwarding targets a developer's own machine, so local addresses are the point.
    sender = WebhookSender(UrlPolicy(allow_internal=True))
    async with internal_channel(config.core.target, InternalAccess.of(config)) as channel:
        metadata = await account_metadata(channel, api_key)
        stream = webhooks_pb2_grpc.WebhooksServiceStub(channel).StreamEvents(
            pb.StreamEventsRequest(types=list(types)), metadata=metadata
        )
        secret = ""
        try:
            async for message in stream:
                if message.HasField("session"):
                    secret = message.session.secret
                    print(
                        f"Ready! Your webhook signing secret is {secret} (^C to quit)",
                        file=out,
                        flush=True,
                    )
                    continue
                # The rendered JSON, as a webhook carries it; from a core that sends only the
                # message, the message (right at every version since 2017-05-25).
                body = message.event_json or encode_payload(to_json(message.event))
                await _forward(sender, message.event, body, secret, forward_to, out)
        except grpc.aio.AioRpcError as error:
            described = describe_call_failure(error, "core", config.core.target)
            failure = f"the event stream ended: {described}"
            if call_failure_is_temporary(error):
                raise CommandTemporaryFailureError(failure) from None
            raise ToolError(failure) from None
        finally:
            await sender.close()
    return 0


async def _forward(
    sender: WebhookSender, event: pb.Event, body: bytes, secret: str, url: str, out: TextIO
) -> None:
    now = int(datetime.now(UTC).timestamp())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(body, [secret], now),
    }
    print(f"--> {event.type} [{event.id}]", file=out, flush=True)
    result = await sender.post(url, body, headers)
    status = result.http_status if result.http_status is not None else result.error
    print(f"<-- [{status}] POST {url} [{event.id}]", file=out, flush=True)


# --- remit trigger --------------------------------------------------------------------------


class RestClient:
    """The public REST API with the account's secret key, as any integration would use it.

    Requests name the latest API version, as the Stripe CLI pins its own: what a trigger sends
    must not depend on the version the account is pinned to."""

    def __init__(self, session: aiohttp.ClientSession, base: str, api_key: str) -> None:
        self._session, self._base, self._key = session, base, api_key

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        decline_expected: bool = False,
    ) -> dict[str, object]:
        """The response body; a card decline (402) is the body of the error when expected."""
        async with self._session.request(
            method,
            self._base + path,
            data=params if method == "POST" else None,
            params=params if method != "POST" else None,
            headers={"Authorization": f"Bearer {self._key}", "Stripe-Version": LATEST_VERSION},
        ) as response:
            body: dict[str, object] = await response.json(content_type=None)
        error = body.get("error")
        if decline_expected and response.status == 402 and isinstance(error, dict):
            return error
        if response.status >= 400 or decline_expected:
            message = error.get("message") if isinstance(error, dict) else body
            failure = f"{method} {path} failed ({response.status}): {message}"
            if response.headers.get("Stripe-Should-Retry") == "true" or response.status in (
                429,
                503,
            ):
                # Rate limited, or a service behind the API out of reach: not the request's
                # fault, and the same command may go through later.
                raise CommandTemporaryFailureError(failure)
            raise ToolError(failure)
        return body


_MADE_BY = {"description": "(created by remit trigger)"}


def _payment(payment_method: str = "pm_card_visa", **extra: str) -> dict[str, str]:
    """A PaymentIntent confirmed on creation, as a checkout with a saved card would."""
    return {
        "amount": "2000",
        "currency": "usd",
        "confirm": "true",
        "payment_method": payment_method,
        "return_url": "https://remit.test/return",
        **_MADE_BY,
        **extra,
    }


async def _payment_intent_created(api: RestClient) -> list[str]:
    intent = await api.request(
        "POST", "/v1/payment_intents", {"amount": "2000", "currency": "usd", **_MADE_BY}
    )
    return [f"payment_intent {intent['id']}"]


async def _payment_succeeded(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment())
    return [f"payment_intent {intent['id']} (succeeded, charge {intent['latest_charge']})"]


async def _payment_requires_action(api: RestClient) -> list[str]:
    intent = await api.request(
        "POST", "/v1/payment_intents", _payment("pm_card_authenticationRequired")
    )
    return [f"payment_intent {intent['id']} ({intent['status']}: 3-D Secure)"]


async def _payment_declined(api: RestClient) -> list[str]:
    error = await api.request(
        "POST",
        "/v1/payment_intents",
        _payment("pm_card_visa_chargeDeclined"),
        decline_expected=True,
    )
    intent = error.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else None
    return [f"payment_intent {intent_id} (declined: {error.get('decline_code')})"]


async def _payment_authorized(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment(capture_method="manual"))
    return [f"payment_intent {intent['id']} (authorized, to capture)"]


async def _payment_canceled(api: RestClient) -> list[str]:
    intent = await api.request(
        "POST", "/v1/payment_intents", {"amount": "2000", "currency": "usd", **_MADE_BY}
    )
    await api.request("POST", f"/v1/payment_intents/{intent['id']}/cancel")
    return [f"payment_intent {intent['id']} (created, then canceled)"]


async def _charge_captured(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment(capture_method="manual"))
    await api.request("POST", f"/v1/payment_intents/{intent['id']}/capture")
    return [f"payment_intent {intent['id']} (authorized, then captured)"]


async def _charge_disputed(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment("pm_card_createDispute"))
    return [
        f"payment_intent {intent['id']} (succeeded; the worker opens its dispute shortly after)"
    ]


async def _charge_refunded(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment())
    refund = await api.request("POST", "/v1/refunds", {"payment_intent": str(intent["id"])})
    return [f"payment_intent {intent['id']} (succeeded)", f"refund {refund['id']}"]


async def _charge_updated(api: RestClient) -> list[str]:
    intent = await api.request("POST", "/v1/payment_intents", _payment())
    charge_id = str(intent["latest_charge"])
    await api.request("POST", f"/v1/charges/{charge_id}", {"metadata[triggered]": "true"})
    return [f"payment_intent {intent['id']} (succeeded)", f"charge {charge_id} (updated)"]


async def _payment_method_attached(api: RestClient) -> list[str]:
    customer = await api.request("POST", "/v1/customers", _MADE_BY)
    method = await api.request(
        "POST", "/v1/payment_methods/pm_card_visa/attach", {"customer": str(customer["id"])}
    )
    return [f"customer {customer['id']}", f"payment_method {method['id']} (attached)"]


async def _payment_method_detached(api: RestClient) -> list[str]:
    made = await _payment_method_attached(api)
    method_id = made[1].split()[1]
    await api.request("POST", f"/v1/payment_methods/{method_id}/detach")
    return [*made[:1], f"payment_method {method_id} (attached, then detached)"]


async def _payment_method_updated(api: RestClient) -> list[str]:
    made = await _payment_method_attached(api)
    method_id = made[1].split()[1]
    await api.request("POST", f"/v1/payment_methods/{method_id}", {"metadata[triggered]": "true"})
    return [*made[:1], f"payment_method {method_id} (attached, then updated)"]


async def _customer_created(api: RestClient) -> list[str]:
    customer = await api.request("POST", "/v1/customers", _MADE_BY)
    return [f"customer {customer['id']}"]


async def _customer_updated(api: RestClient) -> list[str]:
    customer = await api.request("POST", "/v1/customers", _MADE_BY)
    await api.request("POST", f"/v1/customers/{customer['id']}", {"metadata[triggered]": "true"})
    return [f"customer {customer['id']} (created, then updated)"]


async def _customer_deleted(api: RestClient) -> list[str]:
    customer = await api.request("POST", "/v1/customers", _MADE_BY)
    await api.request("DELETE", f"/v1/customers/{customer['id']}")
    return [f"customer {customer['id']} (created, then deleted)"]


# Event type -> what makes it happen through the public API, like the Stripe CLI's fixtures.
# Not here: payouts and balance.available, which happen on the simulated bank's and the
# availability schedule rather than at once, charge.expired, which takes an authorization left
# uncaptured for 7 days, reviews, which need a Review rule first, refund.failed, which takes a
# refund the acquirer refuses (no test card makes it), and a dispute's update, close and funds
# reinstated, which take a dispute the worker has opened (and, for the last two after evidence,
# decided).
TRIGGERS: Final[dict[str, Callable[[RestClient], Awaitable[list[str]]]]] = {
    "payment_intent.created": _payment_intent_created,
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.requires_action": _payment_requires_action,
    "payment_intent.payment_failed": _payment_declined,
    "payment_intent.amount_capturable_updated": _payment_authorized,
    "payment_intent.canceled": _payment_canceled,
    "charge.succeeded": _payment_succeeded,
    "charge.failed": _payment_declined,
    "charge.captured": _charge_captured,
    "charge.refunded": _charge_refunded,
    "charge.updated": _charge_updated,
    "charge.refund.updated": _charge_refunded,
    "charge.dispute.created": _charge_disputed,
    "charge.dispute.funds_withdrawn": _charge_disputed,
    "refund.created": _charge_refunded,
    "refund.updated": _charge_refunded,
    "payment_method.attached": _payment_method_attached,
    "payment_method.detached": _payment_method_detached,
    "payment_method.updated": _payment_method_updated,
    "customer.created": _customer_created,
    "customer.updated": _customer_updated,
    "customer.deleted": _customer_deleted,
}


async def trigger(
    config: PlatformConfig, *, api_key: str, event_type: str, out: TextIO = sys.stdout
) -> int:
    action = TRIGGERS.get(event_type)
    if action is None:
        raise ToolError(f"cannot trigger {event_type!r}; supported: {', '.join(sorted(TRIGGERS))}")
    print(f"Setting up fixture for: {event_type}", file=out, flush=True)
    try:
        async with aiohttp.ClientSession() as session:
            made = await action(RestClient(session, f"http://{config.api.target}", api_key))
    except aiohttp.ClientConnectionError as error:
        raise CommandTemporaryFailureError(
            f"the API is not reachable at {config.api.target} ({error})"
        ) from None
    for line in made:
        print(f"Running fixture: {line}", file=out, flush=True)
    print(
        "Trigger succeeded! Check `remit listen` or your endpoint for the event.",
        file=out,
        flush=True,
    )
    return 0


# --- remit webhooks ... ---------------------------------------------------------------------


async def _with_stub(
    config: PlatformConfig,
    api_key: str,
    call: Callable[[webhooks_pb2_grpc.WebhooksServiceAsyncStub, Metadata], Awaitable[object]],
) -> object:
    async with internal_channel(config.core.target, InternalAccess.of(config)) as channel:
        metadata = await account_metadata(channel, api_key)
        try:
            stub: webhooks_pb2_grpc.WebhooksServiceAsyncStub = (
                webhooks_pb2_grpc.WebhooksServiceStub(channel)
            )
            return await call(stub, metadata)
        except grpc.aio.AioRpcError as error:
            raise call_failed(error, "core", config.core.target, ToolError) from None


def endpoint_line(endpoint: pb.WebhookEndpoint) -> str:
    """One endpoint as `remit webhooks endpoints` prints it: id, status (with why, when it is
    disabled), URL."""
    status = (
        pb.WebhookEndpointStatus.Name(endpoint.status)
        .removeprefix("WEBHOOK_ENDPOINT_STATUS_")
        .lower()
    )
    if endpoint.HasField("disabled_reason"):
        status += f" ({endpoint.disabled_reason})"
    return f"{endpoint.id}  {status}  {endpoint.url}"


async def list_endpoints(config: PlatformConfig, *, api_key: str, out: TextIO) -> int:
    """Every endpoint of the account, newest first; a disabled one says why (by_user, gone:
    it answered 410, failing: every delivery failed for three days, url_invalid: its URL's host
    is an IPv4 address not in dotted-decimal form, which no delivery connects to), which the
    REST API, as Stripe's, does not."""

    async def every_page(
        stub: webhooks_pb2_grpc.WebhooksServiceAsyncStub, metadata: Metadata
    ) -> list[pb.WebhookEndpoint]:
        found: list[pb.WebhookEndpoint] = []
        request = pb.ListWebhookEndpointsRequest(limit=100)
        while True:
            reply = await stub.ListWebhookEndpoints(request, metadata=metadata)
            found.extend(reply.data)
            if not reply.has_more or not reply.data:
                return found
            request.starting_after = reply.data[-1].id

    endpoints = await _with_stub(config, api_key, every_page)
    assert isinstance(endpoints, list)
    for endpoint in endpoints:
        print(endpoint_line(endpoint), file=out)
    out.flush()
    return 0


async def resend(
    config: PlatformConfig,
    *,
    api_key: str,
    event_id: str,
    endpoint_id: str,
    out: TextIO,
    err: TextIO = sys.stderr,
) -> int:
    """The attempt, as JSON on `out`; on `err`, that it disabled the endpoint if it did (in
    the words the log has it in)."""
    reply = await _with_stub(
        config,
        api_key,
        lambda stub, md: stub.ResendEvent(
            pb.ResendEventRequest(event=event_id, webhook_endpoint=endpoint_id), metadata=md
        ),
    )
    assert isinstance(reply, pb.ResendEventResponse)
    print(json.dumps(to_json(reply.delivery_attempt), indent=2), file=out, flush=True)
    if reply.HasField("webhook_endpoint_disabled_reason"):
        print(disabled_message(endpoint_id, reply.webhook_endpoint_disabled_reason), file=err,
              flush=True)  # fmt: skip
    return 0 if reply.delivery_attempt.succeeded else 1


async def redeliver(
    config: PlatformConfig,
    *,
    api_key: str,
    endpoint_id: str,
    since: datetime | None,
    out: TextIO,
) -> int:
    """Every event not delivered to the endpoint (failed, or recorded while it was disabled)
    queued again: one call per batch, each going on after the last event of the one before."""

    async def every_batch(stub: webhooks_pb2_grpc.WebhooksServiceAsyncStub,
                          metadata: Metadata) -> int:  # fmt: skip
        queued = 0
        request = pb.RedeliverFailedEventsRequest(webhook_endpoint=endpoint_id)
        if since is not None:
            request.since.CopyFrom(timestamp(since))
        while True:
            reply = await stub.RedeliverFailedEvents(request, metadata=metadata)
            queued += reply.events_queued
            if not reply.has_more:
                return queued
            request.starting_after = reply.last_event

    queued = await _with_stub(config, api_key, every_batch)
    assert isinstance(queued, int)
    print(f"queued {queued} undelivered event(s) for redelivery to {endpoint_id}", file=out,
          flush=True)  # fmt: skip
    return 0


async def roll_secret(
    config: PlatformConfig,
    *,
    api_key: str,
    endpoint_id: str,
    expire_old_after_s: int | None,
    out: TextIO,
) -> int:
    request = pb.RollWebhookEndpointSecretRequest(id=endpoint_id)
    if expire_old_after_s is not None:
        request.expire_old_secret_after.CopyFrom(duration_pb2.Duration(seconds=expire_old_after_s))
    reply = await _with_stub(
        config, api_key, lambda stub, md: stub.RollWebhookEndpointSecret(request, metadata=md)
    )
    assert isinstance(reply, pb.RollWebhookEndpointSecretResponse)
    expires = reply.old_secret_expires_at.ToDatetime(tzinfo=UTC).isoformat()
    print(f"new signing secret {reply.webhook_endpoint.secret}", file=out)
    print(f"the old secret keeps signing until {expires}", file=out, flush=True)
    return 0


def parse_since(text: str) -> datetime:
    """A unix timestamp or an ISO 8601 time (UTC unless it says otherwise)."""
    # ASCII only: `str.isdigit` is true of "²" too, which `int` cannot read.
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ToolError(
            f"--since must be a unix timestamp or ISO 8601 time, got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def run(coroutine: Awaitable[int], config: PlatformConfig) -> int:
    """Run a tool against `config`'s core. A refusal or failure is raised as a ToolError, and
    Ctrl-C as KeyboardInterrupt, for `remit.command_exits` to report."""
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as error:
        # A call to the core the tool left untranslated (authenticating its key, say).
        raise call_failed(error, "core", config.core.target, ToolError) from None


def run_until_stopped(coroutine: Awaitable[int], config: PlatformConfig) -> int:
    """`run` for a tool that runs until Ctrl-C (`remit listen`): for it, Ctrl-C is the way it
    ends as asked, not an interruption."""
    try:
        return run(coroutine, config)
    except KeyboardInterrupt:
        return 0
