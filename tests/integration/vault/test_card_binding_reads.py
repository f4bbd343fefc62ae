"""The reads that answer a card's details without decrypting it (GetCardDetails, a test id's
resolution) check that its seals name its row's account, as a forward does: a row given to
another account by a write to the vault database is refused as tampered and audited. A row
whose seal format was written by hand, as a value the vault does not know, is refused the same
way rather than failing as an internal error."""

import logging
import re

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.protoconv import timestamp
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.vault import without_the_seal_format_check

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"


async def _tokenize(harness: VaultHarness, cvc: str | None = "314") -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=VISA, exp_month=12, exp_year=2030, requester="test"
    )
    if cvc is not None:
        request.cvc = cvc
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _details(token: str, account: str) -> vault_pb2.GetCardDetailsRequest:
    return vault_pb2.GetCardDetailsRequest(account_id=account, vault_token=token, requester="t")


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


def _assert_refused_as_tampered(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.DATA_LOSS
    detail = detail_from_rpc_error(error)
    assert detail is not None
    assert detail.code == "vault_ciphertext_invalid"
    assert VISA not in str(error)
    assert "4242" not in str(error.details())


async def _audited(
    harness: VaultHarness, action: "vault_pb2.AuditAction.ValueType"
) -> list[tuple[str, str, bool]]:
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=action, limit=100)
    )
    return sorted((e.vault_token, e.account_id, e.succeeded) for e in listed.data)


async def _move(engine: AsyncEngine, token: str, account: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET account_id = :a WHERE token = :t"), {"a": account, "t": token}
        )


async def test_the_details_of_a_card_given_to_another_account_are_refused_and_audited(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _tokenize(harness)
    assert (await harness.vault.stub.GetCardDetails(_details(token, "acct_1"))).card.last4
    await _move(harness.engine, token, "acct_2")

    with caplog.at_level(logging.DEBUG):
        for seal_format in ("2", "1"):
            # Claiming the token-bound format on top does not help: its data key is wrapped
            # the account-bound way, naming acct_1.
            async with harness.engine.begin() as db:
                await db.execute(
                    text(f"UPDATE cards SET seal_format = {seal_format} WHERE token = :t"),  # noqa: S608
                    {"t": token},
                )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await harness.vault.stub.GetCardDetails(_details(token, "acct_2"))
            _assert_refused_as_tampered(caught.value)

    assert await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS) == [
        (token, "acct_1", True),
        (token, "acct_2", False),
        (token, "acct_2", False),
    ]
    assert VISA not in caplog.text
    assert re.search(r"(?<![0-9A-Za-z])314(?![0-9A-Za-z])", caplog.text) is None


async def test_a_test_ids_card_given_to_another_account_is_refused_and_audited(
    harness: VaultHarness,
) -> None:
    resolved = await harness.vault.stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
    )
    # The test id's record and its card, both given to acct_2.
    await _move(harness.engine, resolved.vault_token, "acct_2")
    async with harness.engine.begin() as db:
        await db.execute(text("UPDATE test_card_tokens SET account_id = 'acct_2'"))

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ResolveTestCard(
            vault_pb2.ResolveTestCardRequest(account_id="acct_2", test_id="tok_visa", requester="t")
        )
    _assert_refused_as_tampered(caught.value)
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_RESOLVE_TEST_CARD) == [
        (resolved.vault_token, "acct_2", False)
    ]


async def test_a_seal_format_written_by_hand_is_refused_as_tampered_and_audited(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    async with without_the_seal_format_check(harness.engine):
        async with harness.engine.begin() as db:
            await db.execute(
                text("UPDATE cards SET seal_format = 4 WHERE token = :t"), {"t": token}
            )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.ForwardAuthorization(_forward(token, "op_by_hand"))
        _assert_refused_as_tampered(caught.value)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.GetCardDetails(_details(token, "acct_1"))
        _assert_refused_as_tampered(caught.value)
        # A re-wrap passes it over rather than failing its whole page.
        await harness.vault.service.rotate_key(requester="t")
        assert await harness.vault.service.rewrap_all(requester="t") == 0

    assert harness.acquirer.requests == []
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_FORWARD) == [(token, "acct_1", False)]
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS) == [(token, "acct_1", False)]


async def _seals(engine: AsyncEngine, token: str) -> tuple[object, object, object]:
    async with engine.connect() as db:
        row = (
            await db.execute(
                text(
                    "SELECT wrapped_data_key, number_ciphertext, deleted_at FROM cards "
                    "WHERE token = :t"
                ),
                {"t": token},
            )
        ).one()
    return row[0], row[1], row[2]


async def test_a_card_given_to_another_account_is_not_deleted_by_it_and_the_attempt_audited(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _tokenize(harness)
    await _move(harness.engine, token, "acct_2")
    before = await _seals(harness.engine, token)

    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.DeleteCard(
            vault_pb2.DeleteCardRequest(account_id="acct_2", vault_token=token, requester="t")
        )
    _assert_refused_as_tampered(caught.value)
    # Not shredded: the owner's card, and the evidence of the write, are left as they were.
    assert await _seals(harness.engine, token) == before
    assert before[2] is None
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_DELETE) == [(token, "acct_2", False)]
    assert VISA not in caplog.text

    # Once the row names its account again, its account deletes it as ever.
    await _move(harness.engine, token, "acct_1")
    deleted = await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="t")
    )
    assert deleted.deleted


async def test_a_listing_leaves_out_cards_given_to_another_account_and_audits_them(
    harness: VaultHarness,
) -> None:
    """Left out, a moved card is never offered to the sweep for deletion by the account it
    was given to; a page is filled from the cards after it, so the sweep is not cut short."""
    tokens = []
    for _ in range(4):
        tokens.append(await _tokenize(harness, cvc=None))
        harness.clock.advance(1)
    first, moved_a, moved_b, last = tokens
    await _move(harness.engine, moved_a, "acct_2")
    await _move(harness.engine, moved_b, "acct_2")
    cutoff = harness.clock.now()

    def listing(limit: int) -> vault_pb2.ListCardsCreatedBeforeRequest:
        return vault_pb2.ListCardsCreatedBeforeRequest(
            created_before=timestamp(cutoff), limit=limit, requester="worker"
        )

    page = await harness.vault.stub.ListCardsCreatedBefore(listing(2))
    assert [card.vault_token for card in page.data] == [first, last]
    assert not page.has_more
    single = await harness.vault.stub.ListCardsCreatedBefore(listing(1))
    assert [card.vault_token for card in single.data] == [first]
    assert single.has_more

    # Audited in one event per listing, naming them.
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_LIST_CARDS, limit=100)
    )
    refused = [e.purpose for e in events.data if not e.succeeded]
    assert refused == [
        "left out of a listing: 2 whose seals do not name their account and metadata "
        f"({moved_a}, {moved_b})"
    ]
    assert all(not e.vault_token for e in events.data)
