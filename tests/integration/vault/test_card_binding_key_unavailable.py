"""A card whose data key is wrapped under a key version this vault cannot use (removed from the
key ring, or retired: a card not yet re-wrapped during a rotation) cannot have its binding to
its account checked. That is no sign of tampering, but the key name and version are plain
columns a write to the vault database chooses: its details, its test id's resolution and its
deletion are refused as a precondition under the key error's own code, audited as unchecked,
and a listing leaves it out without stalling. A row given to another account is still refused
as tampered, and one given to another account naming a key version the ring never had is
refused without anything of the card in the answer."""

import logging
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.protoconv import timestamp
from remit.vault.repository import SqlVaultRepository
from remit.vault.service import NAMED_LEFT_OUT, SCANNED_PER_LISTED
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"


async def _tokenize(harness: VaultHarness) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=VISA, exp_month=12, exp_year=2030, requester="test"
    )
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _details(token: str, account: str = "acct_1") -> vault_pb2.GetCardDetailsRequest:
    return vault_pb2.GetCardDetailsRequest(account_id=account, vault_token=token, requester="t")


async def _audited(
    harness: VaultHarness, action: "vault_pb2.AuditAction.ValueType"
) -> list[tuple[str, bool, str]]:
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=action, limit=100)
    )
    return sorted((e.vault_token, e.succeeded, e.purpose) for e in listed.data)


async def _move(engine: AsyncEngine, token: str, account: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET account_id = :a WHERE token = :t"), {"a": account, "t": token}
        )


def _assert_refused_unchecked(error: grpc.aio.AioRpcError, code: str, token: str) -> None:
    """Refused as a precondition, under the key error's own code, with nothing of the card."""
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = detail_from_rpc_error(error)
    assert detail is not None
    assert detail.code == code
    assert token in detail.message
    for leaked in ("4242", "visa", "2030"):
        assert leaked not in str(error.details()).lower()
        assert leaked not in detail.message.lower()


def _make_version_1_unavailable(harness: VaultHarness, how: str) -> None:
    """Version 1 taken from the ring or retired by editing the key file, as a restore or an
    operator's hand may leave it: the service refuses both while data keys use it."""
    with harness.keys.locked():
        ring = harness.keys.load()
        harness.keys.save(ring.without_version(1) if how == "removed" else ring.with_minimum(2))


@pytest.mark.parametrize(
    ("how", "code"), [("removed", "vault_key_missing"), ("retired", "vault_key_retired")]
)
async def test_a_card_whose_key_version_is_unavailable_is_not_taken_for_tampered(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture, how: str, code: str
) -> None:
    stub = harness.vault.stub
    old_cards = [await _tokenize(harness) for _ in range(2)]
    harness.clock.advance(1)
    test_card = await stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
    )
    harness.clock.advance(1)
    await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    moved = await _tokenize(harness)
    await _move(harness.engine, moved, "acct_2")
    harness.clock.advance(1)
    new_card = await _tokenize(harness)
    harness.clock.advance(1)
    _make_version_1_unavailable(harness, how)

    with caplog.at_level(logging.DEBUG):
        # Details and resolution: refused, the binding unchecked.
        for token in old_cards:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetCardDetails(_details(token))
            _assert_refused_unchecked(caught.value, code, token)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ResolveTestCard(
                vault_pb2.ResolveTestCardRequest(
                    account_id="acct_1", test_id="tok_visa", requester="t"
                )
            )
        _assert_refused_unchecked(caught.value, code, test_card.vault_token)

        # Deletion: refused, naming the key version; the card is left as it was.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DeleteCard(
                vault_pb2.DeleteCardRequest(
                    account_id="acct_1", vault_token=old_cards[0], requester="t"
                )
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        detail = detail_from_rpc_error(caught.value)
        assert detail is not None
        assert detail.code == code
        assert "version 1" in detail.message
        async with harness.engine.begin() as db:
            left = await db.scalar(
                text("SELECT deleted_at IS NULL FROM cards WHERE token = :t"), {"t": old_cards[0]}
            )
        assert left is True

        # The listing leaves the old cards out and goes on to the ones after them.
        listed = await stub.ListCardsCreatedBefore(
            vault_pb2.ListCardsCreatedBeforeRequest(
                created_before=timestamp(harness.clock.now()), limit=1, requester="worker"
            )
        )
        assert [card.vault_token for card in listed.data] == [new_card]
        assert listed.scanned_through.vault_token == new_card

        # A row given to another account, under a key version still there, is tampering.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCardDetails(_details(moved, "acct_2"))
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS

    unavailable = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert "version 1" in unavailable[0].getMessage()
    binding_failures = [r.getMessage() for r in caplog.records if "binding check" in r.getMessage()]
    assert binding_failures == [
        f"a listing left out 1 cards that failed their binding check ({moved}) and 0 naming a "
        "key version this vault's key ring never had ()",
        f"card {moved} failed its binding check for get_details",
    ]
    assert VISA not in caplog.text

    unchecked = f"binding not checked, key 'card-kek' version 1 unavailable ({code})"
    details = await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS)
    assert sorted(details) == sorted(
        [(token, False, f"get_details: {unchecked}") for token in old_cards]
        + [(moved, False, "get_details")]
    )
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_RESOLVE_TEST_CARD) == [
        (test_card.vault_token, False, f"resolve tok_visa: {unchecked}")
    ]
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_DELETE) == [
        (old_cards[0], False, f"delete refused: {unchecked}")
    ]
    listings = await _audited(harness, vault_pb2.AUDIT_ACTION_LIST_CARDS)
    left_out = [e for e in listings if e[2].startswith("left out")]
    assert left_out == [
        (
            "",
            False,
            "left out of a listing: 1 whose seals do not name their account and metadata "
            f"({moved}); 2 "
            f"whose binding was not checked, key unavailable ({code}) "
            f"({', '.join(sorted(old_cards))})",
        )
    ]


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("kek_version", "0", "vault_key_retired"),
        ("kek_version", "99", "vault_key_missing"),
        ("kek_name", "'x'", "vault_key_missing"),
    ],
)
async def test_a_card_given_to_another_account_naming_a_key_it_never_had_is_refused(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture, column: str, value: str, code: str
) -> None:
    """Giving a card to another account and naming, in the same update, a key version the ring
    never had makes its binding uncheckable: that account gets nothing of the card."""
    stub = harness.vault.stub
    token = await _tokenize(harness)
    resolved = await stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
    )
    async with harness.engine.begin() as db:
        await db.execute(
            text(f"UPDATE cards SET account_id = 'acct_2', {column} = {value}"),  # noqa: S608
        )
        await db.execute(text("UPDATE test_card_tokens SET account_id = 'acct_2'"))

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCardDetails(_details(token, "acct_2"))
        _assert_refused_unchecked(caught.value, code, token)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ResolveTestCard(
                vault_pb2.ResolveTestCardRequest(
                    account_id="acct_2", test_id="tok_visa", requester="t"
                )
            )
        _assert_refused_unchecked(caught.value, code, resolved.vault_token)
        # Every such card is logged at error level, not once per key version.
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetCardDetails(_details(token, "acct_2"))

    never_had = [r for r in caplog.records if "never had" in r.getMessage()]
    assert [r.levelno for r in never_had] == [logging.ERROR] * 3
    assert VISA not in caplog.text
    details = await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS)
    assert [(t, ok) for t, ok, _ in details] == [(token, False), (token, False)]
    assert all("binding not checked" in purpose for _, _, purpose in details)


async def test_a_long_run_of_cards_left_out_costs_a_bounded_listing_per_call(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing reads at most `SCANNED_PER_LISTED` times its limit of cards, `limit` per
    query, audits the cards it left out in one event, and names the last card it read, so the
    next page goes on after a run of left-out cards however long, instead of one call reading
    them all (and auditing each) past its deadline."""
    stub = harness.vault.stub
    limit = 2
    old_cards = []
    for _ in range(SCANNED_PER_LISTED * limit + 5):
        old_cards.append(await _tokenize(harness))
        harness.clock.advance(1)
    await stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
    new_card = await _tokenize(harness)
    harness.clock.advance(1)
    _make_version_1_unavailable(harness, "removed")

    read: list[int] = []
    real = SqlVaultRepository.live_cards_created_before

    async def counted(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        assert kwargs["limit"] == limit
        page, has_more = await real(self, *args, **kwargs)
        read.append(len(page))
        return page, has_more

    monkeypatch.setattr(SqlVaultRepository, "live_cards_created_before", counted)

    pages = []
    after: str | None = None
    while True:
        read.clear()
        request = vault_pb2.ListCardsCreatedBeforeRequest(
            created_before=timestamp(harness.clock.now()), limit=limit, requester="worker"
        )
        if after is not None:
            request.starting_after = after
        listed = await stub.ListCardsCreatedBefore(request)
        assert sum(read) <= SCANNED_PER_LISTED * limit
        assert len(read) <= SCANNED_PER_LISTED
        pages.append([card.vault_token for card in listed.data])
        after = listed.scanned_through.vault_token
        if not listed.has_more:
            break

    # The first call stops after 20 left-out cards; the next goes on after the last of them.
    assert pages == [[], [new_card]]
    assert after == new_card
    listings = await _audited(harness, vault_pb2.AUDIT_ACTION_LIST_CARDS)
    assert len(listings) == 2 * len(pages)
    left_out = sorted(purpose for _, ok, purpose in listings if not ok)
    unchecked = "whose binding was not checked, key unavailable (vault_key_missing)"
    named = old_cards[:NAMED_LEFT_OUT]
    assert left_out == [
        f"left out of a listing: 20 {unchecked} "
        f"({', '.join(named)} and {20 - NAMED_LEFT_OUT} more)",
        f"left out of a listing: 5 {unchecked} ({', '.join(old_cards[20:])})",
    ]
