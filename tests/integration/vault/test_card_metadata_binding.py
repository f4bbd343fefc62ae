"""A card's seals bind its metadata (`SealFormat.METADATA_BOUND`): its brand, last4,
fingerprint, expiry, funding, country, billing details, mode and creation time, the plain
columns the vault hands out and a forward sends. A write to the vault database that changes
any of them, or swaps them between two cards of one account, makes every read refuse the card
as tampered (DATA_LOSS, audited), as a row given to another account is; nothing reaches the
acquirer. Cards sealed before (account-bound) are re-sealed to the new format, and what the
vault itself changes on a card (its CVC, its key wrapping, its deletion) leaves it usable."""

import logging
import re

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.protoconv import timestamp
from remit.vault.crypto import SealFormat, cvc_key_hour
from remit.vault.repository import SqlVaultRepository
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.vault import sealed_account_bound, store_sealed

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
CVC = "314"
BILLING = common_pb2.BillingDetails(
    name='Zoë Ünïcode / "quoted"',
    email="zoe@example.com",
    address=common_pb2.Address(line1="1 Main St", city="Zürich", postal_code="8001", country="CH"),
)

# Each bound column, and a write to the vault database that changes it.
ALTERATIONS = {
    "brand": "brand = 'mastercard'",
    "last4": "last4 = '4243'",
    "fingerprint": "fingerprint = 'AAAAAAAAAAAAAAAA'",
    "exp_month": "exp_month = 1",
    "exp_year": "exp_year = exp_year + 1",
    "funding": "funding = 'debit'",
    "country": "country = 'GB'",
    "billing_details": "billing_details = jsonb_set(billing_details, '{address,line1}', "
    "'\"2 Other Rd\"')",
    "billing_details_added": 'billing_details = billing_details || \'{"phone": "+15550100"}\'',
    "livemode": "livemode = NOT livemode",
    "created_at": "created_at = created_at - interval '1 day'",
}


async def _tokenize(
    harness: VaultHarness, number: str = VISA, cvc: str | None = CVC, exp_month: int = 12
) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=exp_month, exp_year=2030,
        billing_details=BILLING, requester="test",
    )  # fmt: skip
    if cvc is not None:
        request.cvc = cvc
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


def _details(token: str) -> vault_pb2.GetCardDetailsRequest:
    return vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=token, requester="t")


async def _alter(engine: AsyncEngine, token: str, assignment: str) -> None:
    async with engine.begin() as db:
        await db.execute(
            text(f"UPDATE cards SET {assignment} WHERE token = :t"),  # noqa: S608 (fixed text)
            {"t": token},
        )


def _assert_refused_as_tampered(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.DATA_LOSS
    detail = detail_from_rpc_error(error)
    assert detail is not None
    assert detail.code == "vault_ciphertext_invalid"
    assert VISA not in str(error)
    assert MASTERCARD not in str(error)
    assert "4242" not in str(error.details())


def _assert_no_card_data(text_: str) -> None:
    for number in (VISA, MASTERCARD):
        assert number not in text_
    assert re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", text_) is None


async def _audited(
    harness: VaultHarness, action: "vault_pb2.AuditAction.ValueType"
) -> list[tuple[str, bool]]:
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=action, limit=100)
    )
    return sorted((e.vault_token, e.succeeded) for e in listed.data)


async def test_a_card_forwards_and_answers_its_details_with_its_billing_details_bound(
    harness: VaultHarness,
) -> None:
    """Billing details as JSONB gives them back (keys reordered, non-ASCII text) bind the same
    digest as the vault sealed: the card it stored is the card it reads."""
    token = await _tokenize(harness)
    details = await harness.vault.stub.GetCardDetails(_details(token))
    assert details.billing_details.address.city == "Zürich"
    reply = await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))
    assert reply.result.approved
    [sent] = harness.acquirer.requests
    assert (sent.card_number, sent.cvc, sent.exp_month) == (VISA, CVC, 12)
    assert sent.billing_address.line1 == "1 Main St"
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    assert card.sealed.seal_format is SealFormat.METADATA_BOUND


@pytest.mark.parametrize("column", sorted(ALTERATIONS))
async def test_a_card_whose_metadata_was_changed_is_refused_by_a_forward_and_a_details_read(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture, column: str
) -> None:
    token = await _tokenize(harness)
    await _alter(harness.engine, token, ALTERATIONS[column])

    with caplog.at_level(logging.DEBUG):
        with pytest.raises(grpc.aio.AioRpcError) as forwarded:
            await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))
        _assert_refused_as_tampered(forwarded.value)
        with pytest.raises(grpc.aio.AioRpcError) as read:
            await harness.vault.stub.GetCardDetails(_details(token))
        _assert_refused_as_tampered(read.value)

    assert harness.acquirer.requests == []
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_FORWARD) == [(token, False)]
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS) == [(token, False)]
    _assert_no_card_data(caplog.text)
    # The CVC was not taken: it stays for the card's own authorization, were the row mended.
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    assert card.sealed.cvc_ciphertext is not None


async def test_expiry_and_billing_details_swapped_between_two_cards_of_an_account_are_refused(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    first = await _tokenize(harness, VISA, exp_month=11)
    second = await _tokenize(harness, MASTERCARD, exp_month=3)
    async with harness.engine.begin() as db:
        await db.execute(
            text(
                "UPDATE cards AS c SET exp_month = o.exp_month, exp_year = o.exp_year, "
                'billing_details = o.billing_details || \'{"name": "Other"}\' '
                "FROM cards AS o WHERE o.token <> c.token AND c.token IN (:a, :b) "
                "AND o.token IN (:a, :b)"
            ),
            {"a": first, "b": second},
        )

    with caplog.at_level(logging.DEBUG):
        for index, token in enumerate((first, second)):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await harness.vault.stub.ForwardAuthorization(_forward(token, f"op_{index}"))
            _assert_refused_as_tampered(caught.value)
    assert harness.acquirer.requests == []
    _assert_no_card_data(caplog.text)


async def test_a_card_whose_expiry_was_changed_is_not_deleted_listed_or_resolved(
    harness: VaultHarness,
) -> None:
    """Every read that checks a card's binding checks its metadata with it: a deletion (which
    would destroy the evidence), the listing the sweep deletes from, a test id's resolution."""
    token = await _tokenize(harness, cvc=None)
    resolved = await harness.vault.stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
    )
    harness.clock.advance(1)
    for altered in (token, resolved.vault_token):
        await _alter(harness.engine, altered, "exp_month = 1")

    with pytest.raises(grpc.aio.AioRpcError) as deleted:
        await harness.vault.stub.DeleteCard(
            vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="t")
        )
    _assert_refused_as_tampered(deleted.value)
    listed = await harness.vault.stub.ListCardsCreatedBefore(
        vault_pb2.ListCardsCreatedBeforeRequest(
            created_before=timestamp(harness.clock.now()), limit=10, requester="worker"
        )
    )
    assert list(listed.data) == []
    with pytest.raises(grpc.aio.AioRpcError) as resolving:
        await harness.vault.stub.ResolveTestCard(
            vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
        )
    _assert_refused_as_tampered(resolving.value)

    assert await _audited(harness, vault_pb2.AUDIT_ACTION_DELETE) == [(token, False)]
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_RESOLVE_TEST_CARD) == [
        (resolved.vault_token, False)
    ]
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_LIST_CARDS, limit=100)
    )
    assert [e.purpose for e in events.data if not e.succeeded] == [
        f"left out of a listing: 1 whose seals do not name their account and metadata ({token})"
    ]
    # Once mended, the card is its account's again, and is deleted as ever.
    await _alter(harness.engine, token, "exp_month = 12")
    assert (
        await harness.vault.stub.DeleteCard(
            vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="t")
        )
    ).deleted


async def test_the_reseal_moves_an_account_bound_card_to_the_metadata_bound_format(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    ring = harness.keys.load().with_cvc_keys([cvc_key_hour(START)], START)
    with harness.keys.locked():
        harness.keys.save_cvc_keys(ring.cvc_keys)
    old = sealed_account_bound(ring, token, "acct_1", VISA, CVC, ring.cvc_keys[cvc_key_hour(START)])
    async with harness.engine.begin() as db:
        await store_sealed(db, token, old)
    # Sealed the account-bound way, its metadata is not checked: it still forwards, as
    # before the upgrade, and is counted as left to re-seal.
    await harness.vault.stub.GetCardDetails(_details(token))
    status = await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    assert status.token_bound_cards == 1

    progress = await harness.vault.stub.ResealCards(vault_pb2.ResealCardsRequest(requester="op"))

    assert (progress.resealed, progress.remaining) == (1, 0)
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    assert card.sealed.seal_format is SealFormat.METADATA_BOUND
    assert card.sealed.wrapped_data_key != old.wrapped_data_key
    reply = await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))
    assert reply.result.approved
    assert [(r.card_number, r.cvc) for r in harness.acquirer.requests] == [(VISA, CVC)]
    # Now bound: a change to its expiry is refused.
    await _alter(harness.engine, token, "exp_month = 1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.GetCardDetails(_details(token))
    _assert_refused_as_tampered(caught.value)


async def test_what_the_vault_changes_on_a_card_leaves_it_usable(harness: VaultHarness) -> None:
    """Its CVC taken by a forward, its data key re-wrapped under a new key version, its CVC
    dropped at expiry, and its deletion: none touches a bound column."""
    token = await _tokenize(harness)
    expiring = await _tokenize(harness, MASTERCARD)
    await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))
    await harness.vault.service.rotate_key(requester="t")
    assert await harness.vault.service.rewrap_all(requester="t") == 2
    harness.clock.advance(2 * 3600)
    assert await harness.vault.service.drop_expired_cvcs() == 1

    await harness.vault.stub.ForwardAuthorization(_forward(token, "op_2"))
    await harness.vault.stub.ForwardAuthorization(_forward(expiring, "op_3"))
    details = await harness.vault.stub.GetCardDetails(_details(expiring))
    assert details.card.exp_month == 12
    sent = [(r.card_number, r.cvc) for r in harness.acquirer.requests]
    assert sent == [(VISA, CVC), (VISA, ""), (MASTERCARD, "")]
    assert (
        await harness.vault.stub.DeleteCard(
            vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="t")
        )
    ).deleted
