"""`UpdateCardDetails`: a card's expiry and billing details, which a forward sends to the
acquirer, changed at the vault, and the card re-sealed under its new metadata in the same
transaction (its seals bind those columns, `remit.vault.card_metadata`). The card still opens
and forwards with the new values; a card whose seals do not authenticate is refused as tampered
and left as it was; what no card can have, another account's card, a deleted card and a test
id's card (shared by every payment method made of it) are refused. Every call is audited, and
no card number or CVC reaches a log or an error."""

import logging
import re
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from remit.grpcutil.errors import detail_from_rpc_error
from remit.vault.crypto import SealFormat, cvc_key_hour
from remit.vault.domain import StoredCard
from remit.vault.repository import SqlVaultRepository
from remit.vault.service import NewCardDetails
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness
from tests.support.vault import sealed_account_bound, store_sealed

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
CVC = "314"
ACCOUNT = "acct_1"
BILLING = common_pb2.BillingDetails(
    name="Ada Lovelace",
    address=common_pb2.Address(line1="1 Old Rd", postal_code="10001", country="US"),
)
NEW_BILLING = common_pb2.BillingDetails(
    name="Ada King",
    address=common_pb2.Address(line1="12 New St", city="London", postal_code="W1", country="GB"),
)


async def _tokenize(harness: VaultHarness, *, exp_month: int = 4, exp_year: int = 2026) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id=ACCOUNT, number=VISA, exp_month=exp_month, exp_year=exp_year, cvc=CVC,
        billing_details=BILLING, requester="test",
    )  # fmt: skip
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _update(token: str, **fields: object) -> vault_pb2.UpdateCardDetailsRequest:
    given: dict[str, object] = {
        "account_id": ACCOUNT, "vault_token": token, "requester": "core", **fields,
    }  # fmt: skip
    return vault_pb2.UpdateCardDetailsRequest(**given)  # type: ignore[arg-type]


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id=ACCOUNT, vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


async def _stored(harness: VaultHarness, token: str) -> StoredCard:
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    return card


async def _audited(harness: VaultHarness) -> list[tuple[str, str, str, bool]]:
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_UPDATE_DETAILS, limit=100)
    )
    # The harness's clock stands still: compared in no particular order.
    return sorted((e.vault_token, e.account_id, e.purpose, e.succeeded) for e in listed.data)


def _assert_no_card_data(text_: str) -> None:
    assert VISA not in text_
    # The CVC as a value of its own, not digits of a line number or an id.
    assert re.search(rf"""(?:["'=]|: ){CVC}(?![0-9A-Za-z])""", text_) is None


def _assert_refused(
    caught: pytest.ExceptionInfo[grpc.aio.AioRpcError], status: grpc.StatusCode, code: str
) -> str | None:
    assert caught.value.code() == status
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.code == code
    _assert_no_card_data(str(caught.value))
    return detail.param


async def test_new_expiry_and_billing_details_are_what_the_card_forwards_after_a_reseal(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _tokenize(harness)
    before = await _stored(harness, token)

    with caplog.at_level(logging.DEBUG):
        reply = await harness.vault.stub.UpdateCardDetails(
            _update(token, exp_month=9, exp_year=2031, billing_details=NEW_BILLING)
        )
        forwarded = await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert reply.changed
    assert (reply.card.exp_month, reply.card.exp_year, reply.card.last4) == (9, 2031, "4242")
    assert reply.billing_details == NEW_BILLING
    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id=ACCOUNT, vault_token=token, requester="t")
    )
    assert (details.card.exp_month, details.card.exp_year) == (9, 2031)
    assert details.billing_details == NEW_BILLING
    # Re-sealed under a fresh data key bound to the new metadata: the card opens, its CVC too.
    after = await _stored(harness, token)
    assert after.sealed.seal_format is SealFormat.METADATA_BOUND
    assert after.sealed.wrapped_data_key != before.sealed.wrapped_data_key
    assert after.sealed.number_ciphertext != before.sealed.number_ciphertext
    assert forwarded.result.approved
    [sent] = harness.acquirer.requests
    assert (sent.card_number, sent.cvc, sent.exp_month, sent.exp_year) == (VISA, CVC, 9, 2031)
    assert (sent.billing_address.line1, sent.billing_address.postal_code) == ("12 New St", "W1")
    assert await _audited(harness) == [
        (token, ACCOUNT, "update_details: expiry, billing_details", True)
    ]
    _assert_no_card_data(caplog.text)


async def test_only_the_fields_given_change(harness: VaultHarness) -> None:
    token = await _tokenize(harness)

    await harness.vault.stub.UpdateCardDetails(_update(token, exp_month=1, exp_year=2030))
    expiry_only = await _stored(harness, token)
    await harness.vault.stub.UpdateCardDetails(_update(token, billing_details=NEW_BILLING))
    both = await _stored(harness, token)

    assert (expiry_only.summary.exp_month, expiry_only.summary.exp_year) == (1, 2030)
    assert expiry_only.billing_details == before_billing()
    assert (both.summary.exp_month, both.summary.exp_year) == (1, 2030)
    assert both.billing_details["name"] == "Ada King"
    assert (await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))).result.approved


def before_billing() -> dict[str, object]:
    return {
        "name": "Ada Lovelace",
        "address": {"line1": "1 Old Rd", "postal_code": "10001", "country": "US"},
    }


async def test_the_values_the_card_holds_already_change_nothing(harness: VaultHarness) -> None:
    """A caller whose own commit failed after the vault's sends the same values again."""
    token = await _tokenize(harness)
    update = _update(token, exp_month=9, exp_year=2031, billing_details=NEW_BILLING)
    await harness.vault.stub.UpdateCardDetails(update)
    first = await _stored(harness, token)

    again = await harness.vault.stub.UpdateCardDetails(update)

    assert not again.changed
    assert (again.card.exp_month, again.card.exp_year) == (9, 2031)
    assert again.billing_details == NEW_BILLING
    assert (await _stored(harness, token)).sealed == first.sealed
    assert [purpose for _, _, purpose, _ in await _audited(harness)] == [
        "update_details: expiry, billing_details",
        "update_details: unchanged",
    ]


async def test_a_card_whose_seals_do_not_authenticate_is_refused_and_not_sealed_over(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _tokenize(harness)
    async with harness.engine.begin() as db:
        await db.execute(text("UPDATE cards SET exp_year = 2040 WHERE token = :t"), {"t": token})
    tampered = await _stored(harness, token)

    with caplog.at_level(logging.DEBUG):
        for values in ({"exp_month": 9, "exp_year": 2031}, {"exp_month": 4, "exp_year": 2040}):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await harness.vault.stub.UpdateCardDetails(_update(token, **values))
            _assert_refused(caught, grpc.StatusCode.DATA_LOSS, "vault_ciphertext_invalid")

    assert await _stored(harness, token) == tampered
    with pytest.raises(grpc.aio.AioRpcError) as forwarded:
        await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))
    assert forwarded.value.code() == grpc.StatusCode.DATA_LOSS
    assert harness.acquirer.requests == []
    assert [(t, ok) for t, _, _, ok in await _audited(harness)] == [
        (token, False),
        (token, False),
    ]
    _assert_no_card_data(caplog.text)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"exp_month": 13, "exp_year": 2030}, "exp_month"),
        ({"exp_month": 0, "exp_year": 2030}, "exp_month"),
        ({"exp_month": 2, "exp_year": 2026}, "exp_month"),  # past: it is March 2026
        ({"exp_month": 5, "exp_year": 2025}, "exp_year"),
        ({"exp_month": 5, "exp_year": 2077}, "exp_year"),
        ({"exp_month": 5}, "exp_year"),
        ({"exp_year": 2030}, "exp_month"),
        ({}, "exp_month"),
    ],
)
async def test_what_no_card_can_have_is_an_invalid_argument(
    harness: VaultHarness, fields: dict[str, int], param: str
) -> None:
    token = await _tokenize(harness)
    before = await _stored(harness, token)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.UpdateCardDetails(_update(token, **fields))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == param
    assert await _stored(harness, token) == before


async def test_an_expired_card_takes_new_billing_details_with_the_expiry_it_holds(
    harness: VaultHarness,
) -> None:
    """The core sends the card's whole details on every update; an expiry the card holds is
    not refused for having passed since, or an expired card's address could never change."""
    token = await _tokenize(harness, exp_month=START.month, exp_year=START.year)
    harness.clock.advance(40 * 24 * 3600)

    updated = await harness.vault.stub.UpdateCardDetails(
        _update(token, exp_month=START.month, exp_year=START.year, billing_details=NEW_BILLING)
    )

    assert updated.changed
    assert updated.billing_details == NEW_BILLING
    assert (updated.card.exp_month, updated.card.exp_year) == (START.month, START.year)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        # A new expiry is still held to the rules: one already past is refused.
        await harness.vault.stub.UpdateCardDetails(
            _update(token, exp_month=START.month - 1, exp_year=START.year)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_another_accounts_card_a_deleted_card_and_no_card_are_not_found(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    deleted = await _tokenize(harness)
    await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id=ACCOUNT, vault_token=deleted, requester="t")
    )
    before = await _stored(harness, token)

    for account, named in (("acct_2", token), (ACCOUNT, deleted), (ACCOUNT, "vtok_none")):
        request = _update(named, exp_month=9, exp_year=2031)
        request.account_id = account
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.UpdateCardDetails(request)
        assert _assert_refused(caught, grpc.StatusCode.NOT_FOUND, "resource_missing") == (
            "vault_token"
        )

    assert await _stored(harness, token) == before
    assert await _audited(harness) == sorted(
        [
            (token, "acct_2", "update_details", False),
            (deleted, ACCOUNT, "update_details", False),
            ("vtok_none", ACCOUNT, "update_details", False),
        ]
    )


async def test_a_test_ids_card_is_shared_and_refused(harness: VaultHarness) -> None:
    resolved = await harness.vault.stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id=ACCOUNT, test_id="tok_visa", requester="t")
    )

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.UpdateCardDetails(
            _update(resolved.vault_token, exp_month=9, exp_year=2031)
        )

    _assert_refused(caught, grpc.StatusCode.FAILED_PRECONDITION, "vault_test_card_shared")
    again = await harness.vault.stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(account_id=ACCOUNT, test_id="tok_visa", requester="t")
    )
    assert (again.card.exp_month, again.card.exp_year) == (
        resolved.card.exp_month,
        resolved.card.exp_year,
    )


async def test_an_account_bound_card_is_opened_as_it_was_sealed_and_sealed_metadata_bound(
    harness: VaultHarness,
) -> None:
    """A card stored before the vault bound its metadata: the update opens it under the binding
    it has and seals it under the newest, as the background re-seal would."""
    token = await _tokenize(harness)
    ring = harness.keys.load().with_cvc_keys([cvc_key_hour(START)], START)
    with harness.keys.locked():
        harness.keys.save_cvc_keys(ring.cvc_keys)
    cvc_key = ring.cvc_keys[cvc_key_hour(START)]
    old = sealed_account_bound(ring, token, ACCOUNT, VISA, CVC, cvc_key)
    async with harness.engine.begin() as db:
        await store_sealed(db, token, old)

    await harness.vault.stub.UpdateCardDetails(_update(token, exp_month=9, exp_year=2031))

    assert (await _stored(harness, token)).sealed.seal_format is SealFormat.METADATA_BOUND
    assert (await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))).result.approved
    [sent] = harness.acquirer.requests
    assert (sent.card_number, sent.cvc, sent.exp_month, sent.exp_year) == (VISA, CVC, 9, 2031)


async def test_a_forward_that_read_the_card_before_an_update_sends_the_cvc_it_took(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forward opens the card as it read it; an update then re-seals the card and its CVC
    under new details before the forward takes the CVC: the CVC it took opens under the details
    the card had when it was taken, which are the ones it sends."""
    token = await _tokenize(harness)
    take = SqlVaultRepository.audit_forward_taking_cvc

    async def updated_first(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        await harness.vault.service.update_card_details(
            ACCOUNT, token, NewCardDetails(expiry=(9, 2031)), requester="core"
        )
        return await take(self, *args, **kwargs)

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", updated_first)
    reply = await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert reply.result.approved
    [sent] = harness.acquirer.requests
    assert (sent.card_number, sent.cvc, sent.exp_month, sent.exp_year) == (VISA, CVC, 9, 2031)
