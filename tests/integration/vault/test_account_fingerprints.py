"""A card's fingerprint is its account's own: the same number has one fingerprint within an
account and unrelated ones in two, and the cards fingerprinted under the one key every account
shared before vault migration 0010 are fingerprinted anew by the background re-seal, their
seals binding the new fingerprint."""

import logging
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text

from remit.core.secrets import Secret
from remit.vault.card_metadata import card_metadata
from remit.vault.crypto import (
    FingerprintScope,
    SealFormat,
    cvc_key_hour,
    fingerprint,
    open_card,
    platform_fingerprint,
    seal_card,
)
from remit.vault.domain import StoredCard
from remit.vault.repository import SqlVaultRepository
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START, VaultHarness

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
REQUESTER = "test"


async def _tokenize(
    harness: VaultHarness, account_id: str, number: str = VISA, cvc: str | None = None
) -> str:
    tokenized = await harness.vault.service.tokenize(
        account_id, Secret(number), 12, 2030, None if cvc is None else Secret(cvc),
        requester=REQUESTER,
    )  # fmt: skip
    return tokenized.token


async def _stored(harness: VaultHarness, token: str) -> StoredCard:
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    return card


async def _fingerprint(harness: VaultHarness, account_id: str, token: str) -> str:
    details = await harness.vault.service.card_details(account_id, token, requester=REQUESTER)
    return details.summary.fingerprint


async def _as_before_0010(harness: VaultHarness, token: str, number: str) -> str:
    """Make the stored card `token` one a vault before migration 0010 left: fingerprinted under
    the one key every account shared, its seals (metadata-bound) binding that fingerprint, its
    CVC (if any) sealed anew with them. The platform fingerprint it now has."""
    ring = harness.keys.load()
    card = await _stored(harness, token)
    opened = open_card(
        ring, token, card.account_id, card.sealed, metadata=card_metadata(card)
    )  # fmt: skip
    shared = platform_fingerprint(ring, Secret(number))
    legacy = replace(card, summary=replace(card.summary, fingerprint=shared))
    cvc_key = None if opened.cvc is None else ring.cvc_keys[cvc_key_hour(START)]
    sealed = seal_card(
        ring, token, card.account_id, opened.number, opened.cvc, cvc_key,
        metadata=card_metadata(legacy),
    )  # fmt: skip
    async with harness.engine.begin() as db:
        await db.execute(
            text(
                "UPDATE cards SET fingerprint = :fingerprint, fingerprint_scope = 1, "
                "wrapped_data_key = :key, number_ciphertext = :number, cvc_ciphertext = :cvc "
                "WHERE token = :token"
            ),
            {
                "fingerprint": shared,
                "key": sealed.wrapped_data_key,
                "number": sealed.number_ciphertext,
                "cvc": sealed.cvc_ciphertext,
                "token": token,
            },
        )
    return shared


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


async def _cards_to_reseal(harness: VaultHarness) -> int:
    status = await harness.vault.stub.GetKeyStatus(vault_pb2.GetKeyStatusRequest())
    return status.token_bound_cards


async def test_the_same_number_has_one_fingerprint_per_account(harness: VaultHarness) -> None:
    first = await _tokenize(harness, "acct_1")
    again = await _tokenize(harness, "acct_1")
    other_account = await _tokenize(harness, "acct_2")
    other_number = await _tokenize(harness, "acct_1", MASTERCARD)

    in_one = await _fingerprint(harness, "acct_1", first)
    assert await _fingerprint(harness, "acct_1", again) == in_one
    in_two = await _fingerprint(harness, "acct_2", other_account)
    assert in_two != in_one
    assert await _fingerprint(harness, "acct_1", other_number) != in_one
    ring = harness.keys.load()
    assert (in_one, in_two) == (
        fingerprint(ring, "acct_1", Secret(VISA)),
        fingerprint(ring, "acct_2", Secret(VISA)),
    )
    # Not the fingerprint every account used to share.
    assert platform_fingerprint(ring, Secret(VISA)) not in {in_one, in_two}
    stored = await _stored(harness, first)
    assert stored.fingerprint_scope is FingerprintScope.ACCOUNT
    assert stored.sealed.seal_format is SealFormat.METADATA_BOUND
    # Nothing is left for the re-seal: a new card is fingerprinted under its account already.
    assert await _cards_to_reseal(harness) == 0


async def test_a_test_id_has_its_own_fingerprint_in_each_account_and_is_still_recognised(
    harness: VaultHarness,
) -> None:
    service = harness.vault.service
    in_one = await service.resolve_test_card("acct_1", "pm_card_visa", requester=REQUESTER)
    in_two = await service.resolve_test_card("acct_2", "pm_card_visa", requester=REQUESTER)
    again = await service.resolve_test_card("acct_1", "pm_card_visa", requester=REQUESTER)
    assert in_one.summary.fingerprint != in_two.summary.fingerprint
    assert again.summary.fingerprint == in_one.summary.fingerprint
    # The number given as a number is the test id's card, by its fingerprint in the account.
    typed = await _tokenize(harness, "acct_2")
    details = await service.card_details("acct_2", typed, requester=REQUESTER)
    assert details.summary.fingerprint == in_two.summary.fingerprint
    assert details.test_id == "pm_card_visa"


async def test_a_card_fingerprinted_for_every_account_is_fingerprinted_anew_and_resealed(
    harness: VaultHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with_cvc = await _tokenize(harness, "acct_1", cvc="314")
    in_two = await _tokenize(harness, "acct_2")
    shredded = await _tokenize(harness, "acct_2", MASTERCARD)
    shared = await _as_before_0010(harness, with_cvc, VISA)
    assert await _as_before_0010(harness, in_two, VISA) == shared
    shredded_fingerprint = await _as_before_0010(harness, shredded, MASTERCARD)
    await harness.vault.service.delete_card("acct_2", shredded, requester=REQUESTER)
    # Sealed as the earlier vault sealed them, they open, and answer the shared fingerprint.
    assert await _fingerprint(harness, "acct_1", with_cvc) == shared
    assert await _fingerprint(harness, "acct_2", in_two) == shared
    details = await harness.vault.service.card_details("acct_2", in_two, requester=REQUESTER)
    assert details.test_id == "pm_card_visa"
    assert await _cards_to_reseal(harness) == 2

    with caplog.at_level(logging.DEBUG):
        assert await harness.vault.service.reseal_all(requester=REQUESTER) == 2

    ring = harness.keys.load()
    own = fingerprint(ring, "acct_1", Secret(VISA))
    assert await _fingerprint(harness, "acct_1", with_cvc) == own
    assert await _fingerprint(harness, "acct_2", in_two) == fingerprint(
        ring, "acct_2", Secret(VISA)
    )
    details = await harness.vault.service.card_details("acct_2", in_two, requester=REQUESTER)
    assert details.test_id == "pm_card_visa"
    card = await _stored(harness, with_cvc)
    assert card.fingerprint_scope is FingerprintScope.ACCOUNT
    # The new seals bind the new fingerprint, and still hold the number and the CVC.
    opened = open_card(ring, with_cvc, "acct_1", card.sealed, metadata=card_metadata(card))
    assert opened.number.reveal() == VISA
    assert opened.cvc is not None
    assert opened.cvc.reveal() == "314"
    assert card.cvc_held(START)
    # The row's fingerprint put back to the shared one fails its seals, as any change does.
    async with harness.engine.begin() as db:
        await db.execute(
            text("UPDATE cards SET fingerprint = :f WHERE token = :t"),
            {"f": shared, "t": with_cvc},
        )
    with pytest.raises(Exception, match="failed authentication"):
        await harness.vault.service.card_details("acct_1", with_cvc, requester=REQUESTER)
    # A shredded card has no number left to fingerprint anew: it keeps the one it had.
    assert (await _stored(harness, shredded)).summary.fingerprint == shredded_fingerprint
    assert await _cards_to_reseal(harness) == 0
    assert await harness.vault.service.reseal_all(requester=REQUESTER) == 0
    assert VISA not in caplog.text


async def test_a_refingerprinted_card_forwards_with_its_cvc(harness: VaultHarness) -> None:
    token = await _tokenize(harness, "acct_1", cvc="314")
    await _as_before_0010(harness, token, VISA)
    assert await harness.vault.service.reseal_all(requester=REQUESTER) == 1

    await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    [sent] = harness.acquirer.requests
    assert sent.card_number == VISA
    assert sent.cvc == "314"


async def test_a_forward_whose_card_is_refingerprinted_before_it_takes_the_cvc_sends_it(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-seal fingerprints the card anew, and seals its CVC anew with it, between a
    forward's read of the card and its taking of the CVC: the CVC taken opens under the
    fingerprint it was taken with, and is sent."""
    token = await _tokenize(harness, "acct_1", cvc="314")
    await _as_before_0010(harness, token, VISA)
    take = SqlVaultRepository.audit_forward_taking_cvc
    resealed: list[int] = []

    async def resealed_first(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        resealed.append(await harness.vault.service.reseal_all(requester=REQUESTER))
        return await take(self, *args, **kwargs)

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", resealed_first)
    await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert resealed == [1]
    [sent] = harness.acquirer.requests
    assert sent.HasField("cvc")
    assert sent.cvc == "314"
    stored = await _stored(harness, token)
    assert stored.fingerprint_scope is FingerprintScope.ACCOUNT
    assert stored.sealed.cvc_ciphertext is None  # spent by this forward


async def test_card_details_say_whether_the_fingerprint_is_the_account_s_own(
    harness: VaultHarness,
) -> None:
    """The core keeps a card's fingerprint as its account's for good when the vault says so,
    with no check of its own: every answer holding a card's details says it, and a card the
    re-seal has not re-fingerprinted yet is not said to be the account's."""
    stub = harness.vault.stub
    tokenized = await stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id="acct_1", number=VISA, exp_month=12, exp_year=2030, requester=REQUESTER
        )
    )
    resolved = await stub.ResolveTestCard(
        vault_pb2.ResolveTestCardRequest(
            account_id="acct_1", test_id="pm_card_mastercard", requester=REQUESTER
        )
    )
    token = tokenized.vault_token
    details = vault_pb2.GetCardDetailsRequest(
        account_id="acct_1", vault_token=token, requester=REQUESTER
    )
    update = vault_pb2.UpdateCardDetailsRequest(
        account_id="acct_1", vault_token=token, requester=REQUESTER, exp_month=1, exp_year=2031
    )
    assert tokenized.card.account_fingerprint
    assert resolved.card.account_fingerprint
    assert (await stub.GetCardDetails(details)).card.account_fingerprint
    assert (await stub.UpdateCardDetails(update)).card.account_fingerprint

    shared = await _as_before_0010(harness, token, VISA)

    before_reseal = (await stub.GetCardDetails(details)).card
    assert before_reseal.fingerprint == shared
    assert not before_reseal.account_fingerprint
    update.exp_month = 2
    assert not (await stub.UpdateCardDetails(update)).card.account_fingerprint
    assert await harness.vault.service.reseal_all(requester=REQUESTER) == 1
    resealed = (await stub.GetCardDetails(details)).card
    assert resealed.fingerprint == fingerprint(harness.keys.load(), "acct_1", Secret(VISA))
    assert resealed.account_fingerprint
