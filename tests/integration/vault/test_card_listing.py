"""Listing the vault's cards stored before a cutoff, for the sweep of unreferenced cards."""

from datetime import timedelta

import grpc
import pytest

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.protoconv import from_timestamp, timestamp
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness

pytestmark = pytest.mark.anyio

CUTOFF = START + timedelta(minutes=10)


async def _tokenize(harness: VaultHarness, account: str = "acct_1") -> str:
    reply = await harness.vault.stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id=account, number="4242424242424242", exp_month=12, exp_year=2030,
            requester="test",
        )
    )  # fmt: skip
    return reply.vault_token


def _listing(
    limit: int = 0, starting_after: str | None = None, requester: str = "worker"
) -> vault_pb2.ListCardsCreatedBeforeRequest:
    request = vault_pb2.ListCardsCreatedBeforeRequest(
        created_before=timestamp(CUTOFF), limit=limit, requester=requester
    )
    if starting_after is not None:
        request.starting_after = starting_after
    return request


async def test_cards_stored_before_the_cutoff_are_listed_oldest_first_in_pages(
    harness: VaultHarness,
) -> None:
    stub = harness.vault.stub
    oldest = await _tokenize(harness)
    harness.clock.advance(1)
    deleted = await _tokenize(harness)
    await stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=deleted, requester="test")
    )
    harness.clock.advance(1)
    # Two cards stored in the same instant: the token orders them, so no page skips either.
    accounts = {await _tokenize(harness, "acct_2"): "acct_2", await _tokenize(harness): "acct_1"}
    same_instant = sorted(accounts)
    test_card = await stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
    )
    harness.clock.advance(20 * 60)
    await _tokenize(harness)  # after the cutoff

    first = await stub.ListCardsCreatedBefore(_listing(limit=2))
    assert [card.vault_token for card in first.data] == [oldest, same_instant[0]]
    assert first.has_more
    assert (first.data[0].account_id, from_timestamp(first.data[0].created)) == ("acct_1", START)
    assert first.data[1].account_id == accounts[same_instant[0]]
    second = await stub.ListCardsCreatedBefore(_listing(limit=2, starting_after=same_instant[0]))
    assert [card.vault_token for card in second.data] == [same_instant[1]]
    assert not second.has_more
    assert second.data[0].account_id == accounts[same_instant[1]]
    # Deleted cards and test ids' cards are never listed; a listing may still continue from a
    # card deleted since its page was read.
    everything = await stub.ListCardsCreatedBefore(_listing())
    assert [card.vault_token for card in everything.data] == [oldest, *same_instant]
    assert test_card.vault_token not in {card.vault_token for card in everything.data}
    after_deleted = await stub.ListCardsCreatedBefore(_listing(starting_after=deleted))
    assert [card.vault_token for card in after_deleted.data] == same_instant


async def test_each_listing_is_audited_without_its_tokens(harness: VaultHarness) -> None:
    token = await _tokenize(harness)
    await harness.vault.stub.ListCardsCreatedBefore(_listing(requester="worker"))
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_LIST_CARDS)
    )
    assert len(events.data) == 1
    event = events.data[0]
    assert (event.requester, event.vault_token, event.account_id, event.succeeded) == (
        "worker", "", "", True,
    )  # fmt: skip
    assert event.purpose.startswith("1 cards created before ")
    assert token not in str(event)


@pytest.mark.parametrize(
    ("request_", "param"),
    [
        (_listing(limit=-1), "limit"),
        (_listing(limit=1001), "limit"),
        (vault_pb2.ListCardsCreatedBeforeRequest(limit=10, requester="worker"), "created_before"),
        (_listing(requester=""), "requester"),
    ],
)
async def test_a_listing_with_bad_input_is_refused_as_invalid(
    harness: VaultHarness, request_: vault_pb2.ListCardsCreatedBeforeRequest, param: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ListCardsCreatedBefore(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == param


async def test_a_listing_after_an_unknown_token_is_not_found(harness: VaultHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ListCardsCreatedBefore(_listing(starting_after="vtok_nothing"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
