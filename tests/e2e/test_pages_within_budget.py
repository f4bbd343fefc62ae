"""A page of objects at Stripe's limits, which count characters while a character may take 4
bytes, is cut to the answer's byte budget (remit.storage.answer_budget): fewer objects than
`limit`, with `has_more`, so that REST paging and stripe-python's auto-pager get every object
once, in order. Without the budget, a page of these customers (or of their events) was larger
than the facade takes from the core in one answer: RESOURCE_EXHAUSTED, a 500 on every retry.

The customers are made over gRPC, through the same service as REST's creates, as that is the
quicker way to send ~17 MB; only as many as pass the facade's limit in one page."""

import uuid
from typing import Final

import httpx
import pytest
import stripe

from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES
from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc
from tests.support.accounts import TestAccount, call_metadata, create_account
from tests.support.platform import RunningPlatform

WIDE: Final = "😀"
"""One character, four bytes."""


def _text(characters: int, tag: str = "") -> str:
    return tag + WIDE * (characters - len(tag))


def _address(tag: str) -> common_pb2.Address:
    return common_pb2.Address(
        **{
            name: _text(5000, tag)
            for name in ("city", "country", "line1", "line2", "postal_code", "state")
        }
    )


def _largest_customer(n: int) -> pb.CreateCustomerRequest:
    """A customer at every limit of its text, each character 4 bytes: ~450 KB."""
    tag = f"{n:03d}"
    return pb.CreateCustomerRequest(
        name=_text(256, tag),
        description=_text(5000, tag),
        address=_address(tag),
        shipping=common_pb2.Shipping(
            address=_address(tag),
            carrier=_text(5000, tag),
            name=_text(5000, tag),
            phone=_text(5000, tag),
            tracking_number=_text(5000, tag),
        ),
        metadata={_text(40, f"{tag}{k:02d}"): _text(500, tag) for k in range(50)},
    )


@pytest.fixture(scope="module")
def largest_customers(platform: RunningPlatform) -> tuple[TestAccount, list[str]]:
    """An account with as many of the largest customers as make a page past the facade's
    limit: their ids, newest first."""
    account = create_account(platform.core, token=platform.internal_token)
    made: list[str] = []
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        stub = payments_pb2_grpc.PaymentsServiceStub(channel)
        answered_bytes = 0
        while answered_bytes <= FACADE_RECEIVE_BYTES:
            key = str(uuid.uuid4())
            reply = stub.CreateCustomer(
                _largest_customer(len(made)), metadata=call_metadata(account.id, key), timeout=60
            )
            made.append(reply.customer.id)
            answered_bytes += reply.customer.ByteSize()
    return account, made[::-1]


def _rest_pages(
    platform: RunningPlatform, account: TestAccount, path: str, params: dict[str, str]
) -> list[httpx.Response]:
    """Every page of a list, each asked from the last object of the one before."""
    pages: list[httpx.Response] = []
    after: dict[str, str] = {}
    with httpx.Client(
        base_url=platform.api_base,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=60,
    ) as client:
        while True:
            page = client.get(path, params={**params, "limit": "100", **after})
            assert page.status_code == 200, page.text[:2000]
            pages.append(page)
            body = page.json()
            if not body["has_more"]:
                return pages
            after = {"starting_after": body["data"][-1]["id"]}


def _within_the_limit(pages: list[httpx.Response]) -> None:
    for page in pages:
        assert len(page.content) < FACADE_RECEIVE_BYTES // 2
    counts = [len(page.json()["data"]) for page in pages]
    assert len(pages) > 1, counts
    assert all(0 < count < 100 for count in counts), counts


def test_a_page_of_the_largest_customers_is_cut_and_pages_on_to_each_once(
    platform: RunningPlatform, largest_customers: tuple[TestAccount, list[str]]
) -> None:
    account, newest_first = largest_customers
    pages = _rest_pages(platform, account, "/v1/customers", {})
    listed = [customer["id"] for page in pages for customer in page.json()["data"]]
    assert listed == newest_first
    _within_the_limit(pages)

    client = stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    paged = client.v1.customers.list(params={"limit": 100}).auto_paging_iter()
    assert [customer.id for customer in paged] == newest_first


def test_a_page_of_their_events_is_cut_and_pages_on_to_each_once(
    platform: RunningPlatform, largest_customers: tuple[TestAccount, list[str]]
) -> None:
    account, newest_first = largest_customers
    pages = _rest_pages(platform, account, "/v1/events", {"type": "customer.created"})
    listed = [event["data"]["object"]["id"] for page in pages for event in page.json()["data"]]
    assert listed == newest_first
    _within_the_limit(pages)

    client = stripe.StripeClient(
        account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    paged = client.v1.events.list(
        params={"limit": 100, "type": "customer.created"}
    ).auto_paging_iter()
    assert [event.data.object["id"] for event in paged] == newest_first


def test_a_page_backwards_is_cut_to_those_nearest_its_cursor(
    platform: RunningPlatform, largest_customers: tuple[TestAccount, list[str]]
) -> None:
    account, newest_first = largest_customers
    with httpx.Client(
        base_url=platform.api_base,
        headers={"Authorization": f"Bearer {account.secret_key}"},
        timeout=60,
    ) as client:
        before = client.get(
            "/v1/customers", params={"limit": "100", "ending_before": newest_first[-1]}
        ).json()
    got = [customer["id"] for customer in before["data"]]
    assert 0 < len(got) < len(newest_first) - 1
    assert got == newest_first[-1 - len(got) : -1]
    assert before["has_more"] is True
