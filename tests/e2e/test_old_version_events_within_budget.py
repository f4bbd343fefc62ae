"""Events of an account pinned before 2022-11-15 show each charge with its refunds embedded,
which the event's stored row does not hold: a page of them was cut by the bytes of its rows,
and the answer built from them (each event rendered, and sent twice, as a message and as its
JSON) passed what the facade takes from the core. `GET /v1/events` answered a 500, refused
again on every retry, even at `limit=1`; one event whose charge had enough large refunds could
not be read at all. The page is now cut by the bytes it answers, the facade asks for the JSON
alone, and the refunds an event embeds are held to a budget of their own, `has_more` saying
what is left out (the embedded list's `url` pages on to it)."""

import uuid
from typing import Any, Final

import httpx
import pytest
import stripe

from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES
from remit.grpcutil.internal_auth import internal_sync_channel
from remit.payments.embedded_budget import EMBEDDED_ANSWER_BYTES
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.webhooks.v1 import webhooks_pb2 as pb
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from tests.support.accounts import TestAccount, call_metadata
from tests.support.platform import RunningPlatform
from versions import LATEST_VERSION

BEFORE_CHARGES_REMOVED: Final = "2022-08-01"
WIDE: Final = "😀"
"""One character, four bytes."""


def _largest_metadata(n: int) -> dict[str, str]:
    """Metadata at Stripe's limits (50 keys of 40 characters, values of 500), each character 4
    bytes: ~108 KB as JSON."""
    tag = f"{n:03d}"
    return {tag + f"{k:02d}" + WIDE * 35: tag + WIDE * 497 for k in range(50)}


def _pinned(platform: RunningPlatform, version: str) -> TestAccount:
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).CreateAccount(
            accounts_pb2.CreateAccountRequest(default_currency="usd", api_version=version),
            timeout=10,
        )
    return TestAccount(reply.account.id, reply.secret_key, reply.publishable_key)


def _client(platform: RunningPlatform, account: TestAccount) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )


def _refunded(platform: RunningPlatform, account: TestAccount, refunds: int) -> str:
    """One payment with `refunds` partial refunds, each with the largest metadata: its
    charge's id."""
    client = _client(platform, account)
    intent = client.v1.payment_intents.create(
        params={"amount": 100000, "currency": "usd", "confirm": True,
                "payment_method": "pm_card_visa", "return_url": "https://shop.test/r"}
    )  # fmt: skip
    for n in range(refunds):
        client.v1.refunds.create(
            params={"payment_intent": intent.id, "amount": 10, "metadata": _largest_metadata(n)}
        )
    return str(intent.latest_charge)


@pytest.fixture(scope="module")
def refunded_before_2022_11_15(platform: RunningPlatform) -> tuple[TestAccount, str]:
    """An account pinned before 2022-11-15 whose charge.refunded events, embedding the refunds
    made by then, take more than a page's budget together (~13 MB of JSON)."""
    account = _pinned(platform, BEFORE_CHARGES_REMOVED)
    return account, _refunded(platform, account, 15)


def _events(platform: RunningPlatform, account: TestAccount, limit: int) -> list[httpx.Response]:
    """Every page of the account's charge.refunded events, each from the last of the one
    before."""
    pages: list[httpx.Response] = []
    after: dict[str, str] = {}
    with httpx.Client(
        base_url=platform.api_base,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=60,
    ) as client:
        while True:
            params = {"type": "charge.refunded", "limit": str(limit), **after}
            page = client.get("/v1/events", params=params)
            assert page.status_code == 200, page.text[:2000]
            pages.append(page)
            body = page.json()
            if not body["has_more"]:
                return pages
            after = {"starting_after": body["data"][-1]["id"]}


def _embedded_refunds(event: dict[str, Any]) -> int:
    return len(event["data"]["object"]["refunds"]["data"])


@pytest.mark.parametrize("limit", [1, 100])
def test_a_page_of_events_with_embedded_refunds_pages_on_to_each_once(
    platform: RunningPlatform, refunded_before_2022_11_15: tuple[TestAccount, str], limit: int
) -> None:
    account, charge_id = refunded_before_2022_11_15
    pages = _events(platform, account, limit)
    events = [event for page in pages for event in page.json()["data"]]
    # Newest first: the last refund's event embeds all 15 refunds, the first one's only its own.
    assert [_embedded_refunds(event) for event in events] == list(range(15, 0, -1))
    assert {event["data"]["object"]["id"] for event in events} == {charge_id}
    assert all(len(page.content) < FACADE_RECEIVE_BYTES // 2 for page in pages)
    if limit == 100:
        assert len(pages) > 1, [len(page.json()["data"]) for page in pages]

    paged = (
        _client(platform, account)
        .v1.events.list(params={"limit": limit, "type": "charge.refunded"})
        .auto_paging_iter()
    )
    assert [event.id for event in paged] == [event["id"] for event in events]


def test_a_page_of_such_events_backwards_is_cut_to_those_nearest_its_cursor(
    platform: RunningPlatform, refunded_before_2022_11_15: tuple[TestAccount, str]
) -> None:
    account, _ = refunded_before_2022_11_15
    newest_first = [event["id"] for page in _events(platform, account, 100)
                    for event in page.json()["data"]]  # fmt: skip
    with httpx.Client(
        base_url=platform.api_base,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=60,
    ) as client:
        params = {"type": "charge.refunded", "limit": "100", "ending_before": newest_first[-1]}
        before = client.get("/v1/events", params=params)
    assert before.status_code == 200, before.text[:2000]
    got = [event["id"] for event in before.json()["data"]]
    assert 0 < len(got) < len(newest_first) - 1
    assert got == newest_first[-1 - len(got) : -1]
    assert before.json()["has_more"] is True


def test_an_event_embedding_more_refunds_than_fit_shows_the_first_with_has_more(
    platform: RunningPlatform,
) -> None:
    account = _pinned(platform, BEFORE_CHARGES_REMOVED)
    many = EMBEDDED_ANSWER_BYTES // 100_000 + 2  # each refund's JSON is ~108 KB
    charge_id = _refunded(platform, account, many)
    client = _client(platform, account)
    [newest] = client.v1.events.list(params={"limit": 1, "type": "charge.refunded"}).data

    with httpx.Client(
        base_url=platform.api_base,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=60,
    ) as http:
        answer = http.get(f"/v1/events/{newest.id}")
    assert answer.status_code == 200, answer.text[:2000]
    refunds = answer.json()["data"]["object"]["refunds"]
    assert refunds["has_more"] is True
    assert refunds["total_count"] == many
    assert 0 < len(refunds["data"]) < many
    assert refunds["url"] == f"/v1/charges/{charge_id}/refunds"
    # The newest first, as the charge's own list pages them: the rest follow from its last.
    everything = client.v1.refunds.list(params={"charge": charge_id, "limit": 100}).data
    shown = [refund["id"] for refund in refunds["data"]]
    assert shown == [refund.id for refund in everything][: len(shown)]


def test_events_at_the_latest_version_and_to_grpc_callers_are_unchanged(
    platform: RunningPlatform,
) -> None:
    account = _pinned(platform, LATEST_VERSION)
    charge_id = _refunded(platform, account, 2)
    [event] = (
        _client(platform, account)
        .v1.events.list(params={"limit": 1, "type": "charge.refunded"})
        .data
    )
    assert (event.api_version, event.data.object["id"]) == (LATEST_VERSION, charge_id)
    assert "refunds" not in event.data.object

    # A caller that does not ask for the JSON alone gets each event both ways, as before.
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)
        metadata = call_metadata(account.id, str(uuid.uuid4()))
        listed = stub.ListEvents(
            pb.ListEventsRequest(limit=1, type="charge.refunded"), metadata=metadata, timeout=30
        )
        got = stub.GetEvent(pb.GetEventRequest(id=event.id), metadata=metadata, timeout=30)
    assert [message.id for message in listed.data] == [event.id]
    assert len(listed.data_json) == 1
    assert (got.event.id, bool(got.event_json)) == (event.id, True)
