"""API versions end to end: the official SDK asking for versions per request, an account pinned
to an old version, and `remit accounts upgrade` moving the pin."""

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform
from tests.support.receiver import Receiver
from versions import LATEST_VERSION

BEFORE_SOURCE_RENAMES = "2018-11-08"
"""The last version before 2019-02-11, when PaymentIntent statuses lost their source names."""
BEFORE_CHARGES_REMOVED = "2022-08-01"
"""The last version before 2022-11-15, when PaymentIntents stopped listing their charges."""
BEFORE_BALANCE_RENAME = "2019-10-08"
"""The last version before 2019-10-17, when a Customer's `account_balance` became `balance`."""
BEFORE_REQUEST_HASH = "2017-04-06"
"""The last version before 2017-05-25, when an event's `request` became an object."""
BEFORE_HASH_DIFFERENCES = "2015-01-11"
"""The last version before 2015-01-26, when an event's `previous_attributes` began to show a
hash that changed by its keys that changed."""


def _account_pinned_at(platform: RunningPlatform, version: str) -> TestAccount:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).CreateAccount(
            accounts_pb2.CreateAccountRequest(default_currency="usd", api_version=version),
            timeout=10,
        )
    return TestAccount(reply.account.id, reply.secret_key, reply.publishable_key)


def test_the_same_payment_intent_has_three_shapes_at_three_versions(
    client: stripe.StripeClient,
) -> None:
    created = client.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})

    latest = client.v1.payment_intents.retrieve(created.id).to_dict()
    before_2022 = client.v1.payment_intents.retrieve(
        created.id, options={"stripe_version": "2022-08-01"}
    ).to_dict()
    in_2018 = client.v1.payment_intents.retrieve(
        created.id, options={"stripe_version": BEFORE_SOURCE_RENAMES}
    ).to_dict()

    assert latest["status"] == "requires_payment_method"
    assert not {"charges", "invoice", "allowed_source_types", "next_source_action"} & latest.keys()

    assert before_2022["status"] == "requires_payment_method"
    assert before_2022["invoice"] is None
    assert before_2022["charges"] == {
        "object": "list",
        "data": [],
        "has_more": False,
        "total_count": 0,
        "url": f"/v1/charges?payment_intent={created.id}",
    }
    assert {k: v for k, v in before_2022.items() if k not in ("charges", "invoice")} == latest

    assert in_2018["status"] == "requires_source"
    assert in_2018["allowed_source_types"] == latest["payment_method_types"]
    assert in_2018["next_source_action"] is None
    assert not {"payment_method_types", "next_action"} & in_2018.keys()


def test_an_account_pinned_before_2019_02_11_sees_source_statuses_on_create(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    # Without a Stripe-Version header (stripe-python always sends one), the pin decides.
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "700", "currency": "usd"},
        auth=(account.secret_key, ""),
    )
    assert response.status_code == 200
    assert response.headers["stripe-version"] == BEFORE_SOURCE_RENAMES
    body = response.json()
    assert body["status"] == "requires_source"
    assert body["charges"]["total_count"] == 0


def test_remit_accounts_upgrade_moves_the_pin_forward_and_never_back(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)

    def upgrade(version: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "remit", "accounts", "upgrade", account.id, version],
            env=platform.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    moved = upgrade(LATEST_VERSION)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"{account.id}: {BEFORE_SOURCE_RENAMES} -> {LATEST_VERSION}"
    response = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "700", "currency": "usd"},
        auth=(account.secret_key, ""),
    )
    assert response.headers["stripe-version"] == LATEST_VERSION
    assert response.json()["status"] == "requires_payment_method"

    back = upgrade(BEFORE_SOURCE_RENAMES)
    assert back.returncode == 2
    assert "back" in back.stderr


def _client_at(
    platform: RunningPlatform, account: TestAccount, version: str
) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        base_addresses={"api": platform.api_base},
        stripe_version=version,
        max_network_retries=0,
    )


def _declined(client: stripe.StripeClient, **params: Any) -> stripe.CardError:
    wanted: Any = {"amount": 900, "currency": "usd", "confirm": True,
                   "payment_method": "pm_card_visa_chargeDeclined", **params}  # fmt: skip
    try:
        client.v1.payment_intents.create(params=wanted)
    except stripe.CardError as error:
        return error
    raise AssertionError("the card was not declined")


async def _verified(receiver: Receiver, secret: str, count: int) -> dict[str, stripe.Event]:
    await receiver.wait_for(count, timeout_s=30)
    events = [
        stripe.Webhook.construct_event(item.body.decode(), item.headers["Stripe-Signature"], secret)
        for item in receiver.received
    ]
    return {event.type: event for event in events}


def test_an_account_pinned_before_2019_02_11_sees_source_statuses_on_confirm(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    client = _client_at(platform, account, BEFORE_SOURCE_RENAMES)

    created = client.v1.payment_intents.create(params={"amount": 700, "currency": "usd"})
    assert created.status == "requires_source"
    assert created["allowed_source_types"] == ["card"]
    # No return_url: the rule that asks for one came in 2023-08-16.
    confirmed = client.v1.payment_intents.confirm(
        created.id, params={"payment_method": "pm_card_visa"}
    )
    assert confirmed.status == "succeeded"
    assert confirmed["next_source_action"] is None
    charges = confirmed["charges"]
    assert (charges["total_count"], charges["data"][0]["id"]) == (1, confirmed.latest_charge)
    assert charges["data"][0]["refunds"]["total_count"] == 0

    error = _declined(client)
    assert error.error is not None
    assert error.error.payment_intent is not None
    declined = error.error.payment_intent
    assert declined.status == "requires_source"
    assert declined["last_payment_error"]["decline_code"] == "generic_decline"
    assert declined["charges"]["data"][0]["status"] == "failed"


def test_an_intent_awaiting_3d_secure_before_2019_02_11_authorizes_with_url(
    platform: RunningPlatform,
) -> None:
    """Before 2019-02-11 the action was `next_source_action` `authorize_with_url`, whether the
    intent has a return_url (a redirect today) or not (for the SDK today, an action that came
    later): either way its url is the challenge page, which completes the payment."""
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    client = _client_at(platform, account, BEFORE_SOURCE_RENAMES)
    for return_url in ["https://shop.test/after-3ds", None]:
        params: Any = {"amount": 2000, "currency": "usd", "confirm": True,
                       "payment_method": "pm_card_authenticationRequired"}  # fmt: skip
        if return_url is not None:
            params["return_url"] = return_url
        created = client.v1.payment_intents.create(params=params)
        assert created.status == "requires_source_action"
        assert "next_action" not in created
        action = created["next_source_action"].to_dict()
        assert action["type"] == "authorize_with_url"
        assert set(action) == {"type", "authorize_with_url"}
        page = action["authorize_with_url"]
        assert page["return_url"] == return_url
        assert page["url"].startswith(f"{platform.api_base}/three_d_secure/{account.id}/")
        with httpx.Client(timeout=30) as browser:
            answered = browser.post(page["url"], data={"outcome": "succeed"})
        assert answered.status_code in (200, 303), answered.text
        paid = client.v1.payment_intents.retrieve(created.id)
        assert (paid.status, paid["next_source_action"]) == ("succeeded", None)


@pytest.mark.anyio
async def test_an_account_pinned_before_2019_02_11_sees_source_statuses_in_its_webhooks(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    client = _client_at(platform, account, LATEST_VERSION)  # what the SDK sends by default
    receiver = Receiver()
    await receiver.start()
    try:
        # Created without api_version: the endpoint gets events at the account's version.
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["*"]}
        )
        assert endpoint.api_version is None
        assert endpoint.secret is not None
        created = client.v1.payment_intents.create(params={"amount": 1100, "currency": "usd"})
        intent = await asyncio.to_thread(
            client.v1.payment_intents.confirm,
            created.id,
            params={"payment_method": "pm_card_visa", "return_url": "https://shop.test/r"},
        )
        paid = await _verified(receiver, endpoint.secret, 3)
        receiver.received.clear()
        await asyncio.to_thread(_declined, client, return_url="https://shop.test/r")
        failed = await _verified(receiver, endpoint.secret, 3)
    finally:
        await receiver.stop()

    for event in [*paid.values(), *failed.values()]:
        assert event.api_version == BEFORE_SOURCE_RENAMES
        assert "payment_method_types" not in event.data.object
    assert paid["payment_intent.created"].data.object["status"] == "requires_source"
    assert paid["payment_intent.created"].data.object["allowed_source_types"] == ["card"]
    succeeded = paid["payment_intent.succeeded"].data.object
    assert succeeded["status"] == "succeeded"
    assert [c["id"] for c in succeeded["charges"]["data"]] == [intent.latest_charge]
    assert paid["charge.succeeded"].data.object["refunds"]["total_count"] == 0
    assert failed["payment_intent.payment_failed"].data.object["status"] == "requires_source"
    assert failed["charge.failed"].data.object["status"] == "failed"

    # The events API shows the same rendering, whatever version the request asks for.
    listed = client.v1.events.list(params={"type": "payment_intent.payment_failed"})
    [event] = listed.data
    assert event.api_version == BEFORE_SOURCE_RENAMES
    assert event.data.object["status"] == "requires_source"
    assert client.v1.events.retrieve(event.id).data.object["status"] == "requires_source"


def test_a_confirmed_intent_lists_its_charges_before_2022_11_15(
    client: stripe.StripeClient,
) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 3000, "currency": "usd", "confirm": True,
                "payment_method": "pm_card_visa", "return_url": "https://shop.test/r"}
    )  # fmt: skip
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1000})
    old: Any = {"stripe_version": BEFORE_CHARGES_REMOVED}

    at_2022 = client.v1.payment_intents.retrieve(intent.id, options=old).to_dict()
    charges = at_2022["charges"]
    assert (charges["object"], charges["total_count"], charges["has_more"]) == ("list", 1, False)
    assert charges["url"] == f"/v1/charges?payment_intent={intent.id}"
    [charge] = charges["data"]
    assert (charge["id"], charge["amount_refunded"]) == (intent.latest_charge, 1000)
    # The embedded charge has its refunds, expanded without being asked, as in 2022.
    assert [r["id"] for r in charge["refunds"]["data"]] == [refund.id]
    assert charge["refunds"]["url"] == f"/v1/charges/{charge['id']}/refunds"

    retrieved = client.v1.charges.retrieve(str(intent.latest_charge), options=old).to_dict()
    assert [r["id"] for r in retrieved["refunds"]["data"]] == [refund.id]
    latest = client.v1.charges.retrieve(str(intent.latest_charge)).to_dict()
    assert "refunds" not in latest
    assert "charges" not in client.v1.payment_intents.retrieve(intent.id).to_dict()


def _differences(old: dict[str, Any], new: dict[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """Keys added, removed and changed going from `new` to `old`."""
    changed = {key for key in old.keys() & new.keys() if old[key] != new[key]}
    return set(old) - set(new), set(new) - set(old), changed


@pytest.mark.anyio
async def test_events_at_two_endpoint_versions_differ_exactly_as_the_changes_say(
    client: stripe.StripeClient,
) -> None:
    latest_receiver, old_receiver = Receiver(), Receiver()
    await latest_receiver.start()
    await old_receiver.start()
    try:
        secrets = []
        for receiver, version in ((latest_receiver, None), (old_receiver, BEFORE_CHARGES_REMOVED)):
            params: Any = {"url": receiver.url, "enabled_events": ["payment_intent.succeeded",
                                                                  "charge.succeeded"]}  # fmt: skip
            if version is not None:
                params["api_version"] = version
            secret = client.v1.webhook_endpoints.create(params=params).secret
            assert secret is not None
            secrets.append(secret)
        await asyncio.to_thread(
            client.v1.payment_intents.create,
            params={"amount": 1300, "currency": "usd", "confirm": True,
                    "payment_method": "pm_card_visa", "return_url": "https://shop.test/r"},
        )  # fmt: skip
        latest = await _verified(latest_receiver, secrets[0], 2)
        old = await _verified(old_receiver, secrets[1], 2)
    finally:
        await latest_receiver.stop()
        await old_receiver.stop()

    for event_type in ("payment_intent.succeeded", "charge.succeeded"):
        new_event, old_event = latest[event_type].to_dict(), old[event_type].to_dict()
        assert (new_event["api_version"], old_event["api_version"]) == (
            LATEST_VERSION,
            BEFORE_CHARGES_REMOVED,
        )
        _, _, changed = _differences(old_event, new_event)
        assert changed - {"pending_webhooks"} == {"api_version", "data"}
        added, removed, changed = _differences(
            old_event["data"]["object"], new_event["data"]["object"]
        )
        assert (removed, changed) == (set(), set())
        # 2025-03-31 removed `invoice`; 2022-11-15 removed `charges` and auto-expanded `refunds`.
        if event_type == "payment_intent.succeeded":
            assert added == {"invoice", "charges"}
            assert (
                old_event["data"]["object"]["charges"]["data"][0]["id"]
                == (new_event["data"]["object"]["latest_charge"])
            )
        else:
            assert added == {"invoice", "refunds"}
            assert old_event["data"]["object"]["refunds"]["total_count"] == 0
        assert old_event["data"]["object"]["invoice"] is None


@pytest.mark.anyio
async def test_an_event_keeps_the_version_of_its_moment_after_the_account_upgrades(
    platform: RunningPlatform,
) -> None:
    """Stripe renders an event's data once, at the account's version of the moment, and never
    again: after `remit accounts upgrade`, older events still read (and resend) as they were;
    newer ones are at the new version."""
    account = _account_pinned_at(platform, BEFORE_SOURCE_RENAMES)
    client = _client_at(platform, account, LATEST_VERSION)
    before = client.v1.payment_intents.create(params={"amount": 1200, "currency": "usd"})
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        accounts_pb2_grpc.AccountsServiceStub(channel).UpgradeApiVersion(
            accounts_pb2.UpgradeApiVersionRequest(
                account_id=account.id, api_version=LATEST_VERSION
            ),
            timeout=10,
        )
    after = client.v1.payment_intents.create(params={"amount": 1300, "currency": "usd"})

    listed = client.v1.events.list(params={"type": "payment_intent.created"}).data
    by_intent = {event.data.object["id"]: event for event in listed}
    old, new = by_intent[before.id], by_intent[after.id]
    assert (old.api_version, old.data.object["status"]) == (
        BEFORE_SOURCE_RENAMES,
        "requires_source",
    )
    assert (new.api_version, new.data.object["status"]) == (
        LATEST_VERSION,
        "requires_payment_method",
    )
    fetched = client.v1.events.retrieve(old.id, options={"stripe_version": LATEST_VERSION})
    assert fetched.to_dict() == old.to_dict()

    receiver = Receiver()
    await receiver.start()
    try:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["payment_intent.created"]}
        )
        assert endpoint.secret is not None
        resent = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "remit", "webhooks", "resend", old.id,
             "--endpoint", endpoint.id, "--api-key", account.secret_key],
            env=platform.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert resent.returncode == 0, resent.stderr
        delivered = await _verified(receiver, endpoint.secret, 1)
    finally:
        await receiver.stop()
    again = delivered["payment_intent.created"]
    assert (again.id, again.api_version) == (old.id, BEFORE_SOURCE_RENAMES)
    assert again.data.object["status"] == "requires_source"


@pytest.mark.anyio
async def test_a_customer_before_2019_10_17_has_account_balance_in_responses_and_webhooks(
    client: stripe.StripeClient,
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        params: Any = {"url": receiver.url, "enabled_events": ["customer.created"],
                       "api_version": BEFORE_BALANCE_RENAME}  # fmt: skip
        endpoint = client.v1.webhook_endpoints.create(params=params)
        assert endpoint.secret is not None
        created = await asyncio.to_thread(client.v1.customers.create, params={"name": "Ada"})
        delivered = await _verified(receiver, endpoint.secret, 1)
    finally:
        await receiver.stop()

    old: Any = {"stripe_version": BEFORE_BALANCE_RENAME}
    before = client.v1.customers.retrieve(created.id, options=old).to_dict()
    latest = client.v1.customers.retrieve(created.id).to_dict()
    assert (before["account_balance"], latest["balance"]) == (0, 0)
    # Before 2020-08-27 a Customer also embedded its (in remit, empty) lists.
    lists = {"sources", "subscriptions", "tax_ids"}
    assert before["sources"]["url"] == f"/v1/customers/{created.id}/sources"
    added, removed, changed = _differences(before, latest)
    assert (added, removed, changed) == ({"account_balance"} | lists, {"balance"}, set())

    event = delivered["customer.created"]
    assert event.api_version == BEFORE_BALANCE_RENAME
    assert event.data.object["account_balance"] == 0
    assert "balance" not in event.data.object


@pytest.mark.anyio
async def test_a_customer_updated_event_shows_changed_hashes_by_key_and_whole_before_2015_01_26(
    client: stripe.StripeClient,
) -> None:
    address = {"line1": "1 High St", "city": "London", "postal_code": "N1 1AA", "country": "GB"}
    created: Any = {"metadata": {"a": "1", "tier": "silver"},
                    "shipping": {"name": "Ada", "address": address}}  # fmt: skip
    customer = await asyncio.to_thread(client.v1.customers.create, params=created)
    receivers: dict[str, Receiver] = {
        LATEST_VERSION: Receiver(),
        BEFORE_HASH_DIFFERENCES: Receiver(),
    }
    delivered: dict[str, stripe.Event] = {}
    for receiver in receivers.values():
        await receiver.start()
    try:
        secrets = {}
        for version, receiver in receivers.items():
            params: Any = {"url": receiver.url, "enabled_events": ["customer.updated"],
                           "api_version": version}  # fmt: skip
            secrets[version] = client.v1.webhook_endpoints.create(params=params).secret
        # One key of `metadata` changed, one added, one removed; one of the address added.
        moved = {"name": "Ada", "address": {**address, "line2": "Flat 2"}}
        changes: Any = {"metadata": {"a": "2", "b": "2", "tier": ""}, "shipping": moved}
        await asyncio.to_thread(client.v1.customers.update, customer.id, params=changes)
        for version, receiver in receivers.items():
            secret = secrets[version]
            assert secret is not None
            delivered[version] = (await _verified(receiver, secret, 1))["customer.updated"]
    finally:
        for receiver in receivers.values():
            await receiver.stop()

    latest, old = delivered[LATEST_VERSION], delivered[BEFORE_HASH_DIFFERENCES]
    assert (latest.api_version, old.api_version) == (LATEST_VERSION, BEFORE_HASH_DIFFERENCES)
    for event in (latest, old):
        assert event.data.to_dict()["object"]["metadata"] == {"a": "2", "b": "2"}
    shipping_before = customer.to_dict()["shipping"]
    assert shipping_before["address"]["line2"] is None
    assert latest.data.previous_attributes is not None
    assert latest.data.previous_attributes.to_dict() == {
        # changed, added (null), removed
        "metadata": {"a": "1", "b": None, "tier": "silver"},
        "shipping": {"address": {"line2": None}},
    }
    assert old.data.previous_attributes is not None
    assert old.data.previous_attributes.to_dict() == {
        "metadata": {"a": "1", "tier": "silver"},
        "shipping": shipping_before,
    }
    # The events API shows it as the account's version (the latest) did.
    listed = await asyncio.to_thread(
        client.v1.events.list, params={"type": "customer.updated", "limit": 1}
    )
    assert listed.data[0].id == latest.id
    assert listed.data[0].data.to_dict() == latest.data.to_dict()


def test_events_of_an_account_pinned_before_2017_05_25_name_their_request_by_its_id(
    platform: RunningPlatform,
) -> None:
    """The core renders the event with `request` a string; it must reach the client as such,
    from the list and from a retrieve."""
    account = _account_pinned_at(platform, BEFORE_REQUEST_HASH)
    auth = (account.secret_key, "")
    created = httpx.post(
        f"{platform.api_base}/v1/payment_intents",
        data={"amount": "800", "currency": "usd"},
        auth=auth,
    )
    assert created.status_code == 200, created.text
    request_id = created.headers["request-id"]

    listed = httpx.get(
        f"{platform.api_base}/v1/events", params={"type": "payment_intent.created"}, auth=auth
    )
    assert listed.status_code == 200, listed.text
    (event,) = listed.json()["data"]
    assert (event["api_version"], event["request"]) == (BEFORE_REQUEST_HASH, request_id)
    assert event["data"]["object"]["status"] == "requires_source"

    retrieved = httpx.get(f"{platform.api_base}/v1/events/{event['id']}", auth=auth)
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json() == event


@pytest.mark.anyio
async def test_remit_listen_forwards_an_event_pinned_before_2017_05_25_as_rendered(
    platform: RunningPlatform,
) -> None:
    account = _account_pinned_at(platform, BEFORE_REQUEST_HASH)
    local = Receiver()
    await local.start()
    listen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remit", "listen", "--forward-to", local.url,
        "--events", "payment_intent.created", "--api-key", account.secret_key,
        env=platform.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert listen.stdout is not None
        banner = (await asyncio.wait_for(listen.stdout.readline(), 30)).decode()
        assert banner.startswith("Ready! Your webhook signing secret is whsec_"), banner
        created = await asyncio.to_thread(
            httpx.post,
            f"{platform.api_base}/v1/payment_intents",
            data={"amount": "800", "currency": "usd"},
            auth=(account.secret_key, ""),
        )
        assert created.status_code == 200, created.text
        await local.wait_for(1, timeout_s=30)
    finally:
        if listen.returncode is None:
            listen.terminate()
        await listen.wait()
        await local.stop()
    forwarded = json.loads(local.received[0].body)
    assert (forwarded["api_version"], forwarded["request"]) == (
        BEFORE_REQUEST_HASH,
        created.headers["request-id"],
    )
