"""Webhooks through the real platform: the SDK manages endpoints and reads events, the real
worker delivers, and the CLI's listen, trigger, resend and redeliver work against it."""

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.engine import dispose, make_engine
from remit.webhooks.domain import MAX_ENDPOINTS_PER_ACCOUNT
from remit.webhooks.outbox import record_event
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform
from tests.support.postgres import WorkerDatabases
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(databases: WorkerDatabases) -> AsyncIterator[AsyncEngine]:
    made = make_engine(databases.core_url, pool_size=2)
    yield made
    await dispose(made)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver([Reply(410)] + [Reply()] * 10)
    await running.start()
    yield running
    await running.stop()


async def emit(
    engine: AsyncEngine, account: TestAccount, event_type: str = "customer.created"
) -> str:
    """What the payments service does in its own transactions."""
    async with engine.begin() as db:
        return await record_event(
            db,
            account_id=account.id,
            type=event_type,
            data_object={"id": "cus_e2e", "object": "customer", "balance": 1200},
            now=datetime.now(UTC),
        )


async def until_disabled(client: stripe.StripeClient, endpoint_id: str) -> None:
    """Until the worker has recorded the endpoint's 410 Gone (it does so after the answer the
    receiver has seen, however slowly a loaded machine runs it)."""
    deadline = asyncio.get_running_loop().time() + 30
    while client.v1.webhook_endpoints.retrieve(endpoint_id).status != "disabled":
        assert asyncio.get_running_loop().time() < deadline, "the endpoint was not disabled"
        await asyncio.sleep(0.05)


def remit_cli(platform: RunningPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remit", *args],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_an_endpoint_disabled_for_its_url_is_enabled_only_with_a_valid_url(
    client: stripe.StripeClient, engine: AsyncEngine
) -> None:
    created = client.v1.webhook_endpoints.create(
        params={"url": "https://example.com/hooks", "enabled_events": ["*"]}
    )
    # As core migration 0051 left an endpoint saved before such URLs were refused.
    async with engine.begin() as db:
        await db.execute(
            text(
                "UPDATE webhook_endpoints SET url = 'http://127.1/hook', status = 'disabled', "
                "disabled_reason = 'url_invalid' WHERE id = :id"
            ),
            {"id": created.id},
        )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.update(created.id, params={"disabled": False})
    assert refused.value.http_status == 400
    error = refused.value.error
    assert error is not None
    assert (error.type, error.code, error.param) == ("invalid_request_error", "url_invalid", "url")
    assert error.message is not None
    assert "pass a valid url" in error.message
    unchanged = client.v1.webhook_endpoints.retrieve(created.id)
    assert (unchanged.status, unchanged.url) == ("disabled", "http://127.1/hook")
    mended = client.v1.webhook_endpoints.update(
        created.id, params={"url": "https://example.com/mended"}
    )
    assert (mended.status, mended.url) == ("enabled", "https://example.com/mended")


def test_the_sdk_manages_webhook_endpoints(client: stripe.StripeClient) -> None:
    created = client.v1.webhook_endpoints.create(
        params={
            "url": "https://example.com/hooks",
            "enabled_events": ["payment_intent.succeeded", "charge.refunded"],
            "api_version": "2024-06-20",
            "description": "orders",
            "metadata": {"team": "payments"},
        }
    )
    assert created.id.startswith("we_")
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    assert created.status == "enabled"
    assert created.api_version == "2024-06-20"

    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched  # shown only once, at creation
    assert fetched.enabled_events == ["payment_intent.succeeded", "charge.refunded"]

    updated = client.v1.webhook_endpoints.update(
        created.id, params={"disabled": True, "description": "", "metadata": {"team": ""}}
    )
    assert updated.status == "disabled"
    assert updated.description is None
    assert updated.metadata.to_dict() == {}
    assert "secret" not in updated

    listed = client.v1.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [created.id]
    assert "secret" not in listed.data[0]
    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert missing.value.http_status == 404


def test_an_endpoint_configured_for_stripe_is_taken_as_it_is(client: stripe.StripeClient) -> None:
    """Any type Stripe documents, such as `invoice.paid`, which remit never emits (and so never
    delivers); a string that is no Stripe type is refused as before, naming where it was."""
    created = client.v1.webhook_endpoints.create(
        params={
            "url": "https://example.com/hooks",
            "enabled_events": ["payment_intent.succeeded", "invoice.paid"],
        }
    )
    assert created.enabled_events == ["payment_intent.succeeded", "invoice.paid"]
    # The SDK's types know "invoice.exploded" is none of Stripe's.
    bad: Any = {"enabled_events": ["invoice.paid", "invoice.exploded"]}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.update(created.id, params=bad)
    assert refused.value.http_status == 400
    error = refused.value.error
    assert error is not None
    assert (error.type, error.param) == ("invalid_request_error", "enabled_events[1]")
    assert client.v1.events.list(params={"type": "invoice.paid"}).data == []


def test_bad_endpoints_are_refused_with_the_parameter_named(client: stripe.StripeClient) -> None:
    cases = [
        ({"url": "https://e.com/h", "enabled_events": ["charge.exploded"]}, "enabled_events[0]"),
        ({"url": "ftp://e.com/h", "enabled_events": ["*"]}, "url"),
        ({"url": "https://user:pw@e.com/h", "enabled_events": ["*"]}, "url"),
        ({"url": "https://e.com/h", "enabled_events": ["*"], "api_version": "2099-01-01"},
         "api_version"),
    ]  # fmt: skip
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.webhook_endpoints.create(params=params)  # type: ignore[arg-type]
        assert refused.value.param == param


def test_an_account_past_its_endpoints_cap_is_refused_on_url(
    client: stripe.StripeClient,
) -> None:
    params: dict[str, Any] = {"url": "https://example.com/hooks", "enabled_events": ["*"]}
    for _ in range(MAX_ENDPOINTS_PER_ACCOUNT):
        client.v1.webhook_endpoints.create(params=params)  # type: ignore[arg-type]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.create(params=params)  # type: ignore[arg-type]
    assert (refused.value.http_status, refused.value.param) == (400, "url")
    assert f"{MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints" in str(refused.value.user_message)


async def test_the_worker_delivers_and_the_events_api_lists_the_event(
    client: stripe.StripeClient, account: TestAccount, engine: AsyncEngine, receiver: Receiver
) -> None:
    receiver_ok = Receiver()
    await receiver_ok.start()
    try:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver_ok.url, "enabled_events": ["customer.created"]}
        )
        event_id = await emit(engine, account)
        await receiver_ok.wait_for(1, timeout_s=30)
    finally:
        await receiver_ok.stop()
    delivered = receiver_ok.received[0]
    assert endpoint.secret is not None
    event = stripe.Webhook.construct_event(
        delivered.body.decode(), delivered.headers["Stripe-Signature"], endpoint.secret
    )
    assert event.id == event_id
    assert event.data.object.balance == 1200

    listed = client.v1.events.list(params={"type": "customer.created"})
    assert [e.id for e in listed.data] == [event_id]
    assert client.v1.events.list(params={"types": ["charge.refunded"]}).data == []
    fetched = client.v1.events.retrieve(event_id)
    assert fetched.type == "customer.created"
    assert fetched.data.object.id == "cus_e2e"


async def test_resend_and_redeliver_from_the_cli(
    platform: RunningPlatform,
    client: stripe.StripeClient,
    account: TestAccount,
    engine: AsyncEngine,
    receiver: Receiver,
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    event_id = await emit(engine, account)
    await receiver.wait_for(1, timeout_s=30)  # answered 410 Gone: the endpoint is disabled
    await until_disabled(client, endpoint.id)

    resend = ("webhooks", "resend", event_id, "--endpoint", endpoint.id,
              "--api-key", account.secret_key)  # fmt: skip
    refused = await asyncio.to_thread(remit_cli, platform, *resend)
    assert refused.returncode == 2
    assert "disabled" in refused.stderr

    client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": False})
    resent = await asyncio.to_thread(remit_cli, platform, *resend)
    assert resent.returncode == 0, resent.stderr
    assert json.loads(resent.stdout)["succeeded"] is True
    assert len(receiver.received) == 2

    redelivered = await asyncio.to_thread(remit_cli, platform, "webhooks", "redeliver",
                                          endpoint.id, "--api-key", account.secret_key)  # fmt: skip
    # The resend succeeded, so nothing is left undelivered.
    assert redelivered.returncode == 0, redelivered.stderr
    assert "queued 0 undelivered event" in redelivered.stdout


async def test_a_resend_answered_410_tells_the_operator_it_disabled_the_endpoint(
    platform: RunningPlatform,
    client: stripe.StripeClient,
    account: TestAccount,
    engine: AsyncEngine,
) -> None:
    """The resend's attempt is printed as ever; that it disabled the endpoint is said on
    stderr, in the words the worker logs it in."""
    receiver = Receiver([Reply(), Reply(410)])
    await receiver.start()
    try:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["*"]}
        )
        event_id = await emit(engine, account)
        await receiver.wait_for(1, timeout_s=30)
        resent = await asyncio.to_thread(remit_cli, platform, "webhooks", "resend", event_id,
                                         "--endpoint", endpoint.id,
                                         "--api-key", account.secret_key)  # fmt: skip
    finally:
        await receiver.stop()
    assert resent.returncode == 1, resent.stderr
    assert json.loads(resent.stdout)["http_status"] == 410
    assert (
        f"webhook endpoint {endpoint.id} answered 410 Gone; disabled (disabled_reason gone)"
        in resent.stderr.splitlines()
    )
    assert client.v1.webhook_endpoints.retrieve(endpoint.id).status == "disabled"


async def test_the_cli_says_why_an_endpoint_is_disabled_and_the_api_does_not(
    platform: RunningPlatform,
    client: stripe.StripeClient,
    account: TestAccount,
    engine: AsyncEngine,
    receiver: Receiver,
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": receiver.url, "enabled_events": ["*"]}
    )
    await emit(engine, account)
    await receiver.wait_for(1, timeout_s=30)  # answered 410 Gone: the endpoint is disabled
    await until_disabled(client, endpoint.id)
    retrieved = client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert retrieved.status == "disabled"
    assert "disabled_reason" not in retrieved  # not in Stripe's object

    listed = await asyncio.to_thread(remit_cli, platform, "webhooks", "endpoints",
                                     "--api-key", account.secret_key)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"{endpoint.id}  disabled (gone)  {receiver.url}"]


async def test_remit_listen_forwards_events_signed_with_the_secret_it_prints(
    platform: RunningPlatform, account: TestAccount, engine: AsyncEngine
) -> None:
    local = Receiver()
    await local.start()
    listen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remit", "listen", "--forward-to", local.url,
        "--api-key", account.secret_key, env=platform.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert listen.stdout is not None
        banner = (await asyncio.wait_for(listen.stdout.readline(), 30)).decode()
        assert banner.startswith("Ready! Your webhook signing secret is whsec_"), banner
        secret = banner.split()[6]
        event_id = await emit(engine, account, "customer.updated")
        await local.wait_for(1, timeout_s=30)
    finally:
        listen.terminate()
        await listen.wait()
        await local.stop()
    forwarded = local.received[0]
    event = stripe.Webhook.construct_event(
        forwarded.body.decode(), forwarded.headers["Stripe-Signature"], secret
    )
    assert event.id == event_id
    assert event.type == "customer.updated"


def test_remit_trigger_makes_the_real_object(
    platform: RunningPlatform, client: stripe.StripeClient, account: TestAccount
) -> None:
    ran = remit_cli(platform, "trigger", "payment_intent.created", "--api-key", account.secret_key)
    assert ran.returncode == 0, ran.stderr
    [intent] = client.v1.payment_intents.list().data
    assert intent.description == "(created by remit trigger)"

    unknown = remit_cli(platform, "trigger", "charge.exploded", "--api-key", account.secret_key)
    assert unknown.returncode == 2
    assert "payment_intent.created" in unknown.stderr
