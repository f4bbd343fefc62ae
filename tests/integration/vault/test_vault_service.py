"""The vault over real gRPC and PostgreSQL: tokenizing, forwarding, CVC retention, refusals."""

import re

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import text

from remit.core.ids import new_id
from remit.grpcutil.errors import detail_from_rpc_error
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness
from tests.support.vault import damage_sealed_card, dump_database

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"


async def _tokenize(
    harness: VaultHarness, number: str = VISA, cvc: str | None = "314", account: str = "acct_1"
) -> vault_pb2.TokenizeCardResponse:
    request = vault_pb2.TokenizeCardRequest(
        account_id=account, number=number, exp_month=12, exp_year=2030, requester="test"
    )
    if cvc is not None:
        request.cvc = cvc
    return await harness.vault.stub.TokenizeCard(request)


def _forward(
    token: str, *, reference: str | None = None, destination: str = "acquirer",
    account: str = "acct_1",
) -> vault_pb2.ForwardAuthorizationRequest:  # fmt: skip
    return vault_pb2.ForwardAuthorizationRequest(
        account_id=account,
        vault_token=token,
        destination=destination,
        amount=2000,
        currency="usd",
        reference=reference or new_id("op"),
        capture=True,
        purpose="payment_intent.confirm pi_test",
        requester="core",
    )


async def test_tokenizing_returns_only_public_details_and_a_keyed_fingerprint(
    harness: VaultHarness,
) -> None:
    first = await _tokenize(harness)
    again = await _tokenize(harness, cvc=None)
    assert first.vault_token.startswith("vtok_")
    assert first.vault_token != again.vault_token
    card = first.card
    assert (card.brand, card.last4, card.exp_month, card.exp_year) == (
        common_pb2.CARD_BRAND_VISA, "4242", 12, 2030,
    )  # fmt: skip
    assert card.funding == common_pb2.CARD_FUNDING_CREDIT
    assert card.fingerprint == again.card.fingerprint
    other = await _tokenize(harness, number="5555555555554444")
    assert other.card.fingerprint != card.fingerprint
    assert VISA not in str(first)


async def test_invalid_cards_get_stripes_codes_and_params_over_grpc(harness: VaultHarness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _tokenize(harness, number="4242424242424241")
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.type, detail.code, detail.param, detail.http_status) == (
        "card_error", "incorrect_number", "card[number]", 402,
    )  # fmt: skip
    assert "4242424242424241" not in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _tokenize(harness, cvc="12")
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert (detail.code, detail.param) == ("invalid_cvc", "card[cvc]")


async def test_forwarding_sends_the_card_to_the_acquirer_and_destroys_the_cvc_after_first_use(
    harness: VaultHarness,
) -> None:
    token = (await _tokenize(harness)).vault_token
    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=token, requester="t")
    )
    assert details.cvc_present

    reply = await harness.vault.stub.ForwardAuthorization(_forward(token))
    assert reply.result.approved
    assert not reply.replayed
    assert reply.result.authorization_id.startswith("auth_")
    sent = harness.acquirer.requests[-1]
    assert (sent.card_number, sent.cvc, sent.amount, sent.merchant_id) == (
        VISA, "314", 2000, "acct_1",
    )  # fmt: skip

    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=token, requester="t")
    )
    assert not details.cvc_present
    async with harness.engine.connect() as db:
        stored = (
            await db.execute(
                text("SELECT cvc_ciphertext FROM cards WHERE token = :t"), {"t": token}
            )
        ).scalar_one()
    assert stored is None

    await harness.vault.stub.ForwardAuthorization(_forward(token))
    assert not harness.acquirer.requests[-1].HasField("cvc")
    assert harness.acquirer.requests[-1].card_number == VISA


async def test_a_cvc_is_destroyed_after_an_hour_even_without_an_authorization(
    harness: VaultHarness,
) -> None:
    token = (await _tokenize(harness)).vault_token
    harness.clock.advance(59 * 60)
    assert await harness.vault.service.drop_expired_cvcs() == 0
    harness.clock.advance(2 * 60)
    details = await harness.vault.stub.GetCardDetails(
        vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=token, requester="t")
    )
    assert not details.cvc_present
    assert await harness.vault.service.drop_expired_cvcs() == 1
    await harness.vault.stub.ForwardAuthorization(_forward(token))
    assert not harness.acquirer.requests[-1].HasField("cvc")


async def test_a_retry_with_the_same_reference_replays_the_first_answer(
    harness: VaultHarness,
) -> None:
    token = (await _tokenize(harness)).vault_token
    first = await harness.vault.stub.ForwardAuthorization(_forward(token, reference="op_same"))
    again = await harness.vault.stub.ForwardAuthorization(_forward(token, reference="op_same"))
    assert again.replayed
    assert again.result == first.result
    assert len(harness.acquirer.requests) == 1


async def test_a_destination_outside_the_allowlist_is_refused_and_audited(
    harness: VaultHarness,
) -> None:
    token = (await _tokenize(harness)).vault_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(
            _forward(token, destination="evil.example:443", reference="op_x")
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert harness.acquirer.requests == []
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(vault_token=token, action=vault_pb2.AUDIT_ACTION_FORWARD)
    )
    assert [(e.succeeded, e.destination, e.reference) for e in events.data] == [
        (False, "evil.example:443", "op_x")
    ]


async def test_tampered_or_swapped_ciphertext_is_refused_and_nothing_is_sent(
    harness: VaultHarness,
) -> None:
    tampered = (await _tokenize(harness)).vault_token
    victim = (await _tokenize(harness, number="5555555555554444")).vault_token
    thief = (await _tokenize(harness, number="4000056655665556")).vault_token
    async with harness.engine.begin() as db:
        await damage_sealed_card(db, tampered)
        # Copy the victim's sealed number and data key onto another card's row.
        await db.execute(
            text(
                "UPDATE cards SET number_ciphertext = v.number_ciphertext, "
                "wrapped_data_key = v.wrapped_data_key FROM cards v "
                "WHERE cards.token = :thief AND v.token = :victim"
            ),
            {"thief": thief, "victim": victim},
        )
    for token in (tampered, thief):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.ForwardAuthorization(_forward(token))
        # DATA_LOSS, not INTERNAL: the caller learns that nothing was forwarded.
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS
        detail = detail_from_rpc_error(caught.value)
        assert detail is not None
        assert detail.code == "vault_ciphertext_invalid"
    assert harness.acquirer.requests == []
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD)
    )
    assert sorted(e.vault_token for e in events.data if not e.succeeded) == sorted(
        [tampered, thief]
    )


async def test_another_account_cannot_use_or_see_a_token(harness: VaultHarness) -> None:
    token = (await _tokenize(harness)).vault_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(token, account="acct_2"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.GetCardDetails(
            vault_pb2.GetCardDetailsRequest(account_id="acct_2", vault_token=token, requester="t")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert harness.acquirer.requests == []


async def test_a_forward_of_another_accounts_or_a_deleted_card_is_refused_and_audited(
    harness: VaultHarness,
) -> None:
    """PCI DSS 10.2.1.4 asks for invalid access attempts to be logged: a forward naming a card
    the account may not use is recorded like a refused destination, as the caller named it."""
    others = (await _tokenize(harness)).vault_token
    deleted = (await _tokenize(harness, number="5555555555554444")).vault_token
    await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=deleted, requester="t")
    )
    attempts = ((others, "acct_2", "op_others"), (deleted, "acct_1", "op_deleted"))
    for token, account, reference in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.ForwardAuthorization(
                _forward(token, account=account, reference=reference)
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert harness.acquirer.requests == []
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD)
    )
    audited = {(e.vault_token, e.account_id, e.reference, e.destination, e.succeeded)
               for e in events.data}  # fmt: skip
    assert audited == {(token, account, ref, "acquirer", False) for token, account, ref in attempts}


async def test_an_audit_listing_bounded_beyond_the_year_9999_is_an_invalid_argument(
    harness: VaultHarness,
) -> None:
    """A Timestamp holds any int64 of seconds, a datetime only years 1 to 9999: such a bound is
    the caller's bad input, not an internal error."""
    beyond = timestamp_pb2.Timestamp(seconds=10**12)
    request = vault_pb2.ListAuditEventsRequest(created=common_pb2.CreatedFilter(gt=beyond))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ListAuditEvents(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.param == "created[gt]"


async def test_test_ids_resolve_to_one_stable_card_per_account(harness: VaultHarness) -> None:
    def resolve(test_id: str, account: str = "acct_1") -> vault_pb2.ResolveTestCardRequest:
        return vault_pb2.ResolveTestCardRequest(
            account_id=account, test_id=test_id, requester="core"
        )

    first = await harness.vault.stub.ResolveTestCard(resolve("pm_card_visa"))
    again = await harness.vault.stub.ResolveTestCard(resolve("pm_card_visa"))
    other_account = await harness.vault.stub.ResolveTestCard(resolve("pm_card_visa", "acct_2"))
    assert first.vault_token == again.vault_token != other_account.vault_token
    assert first.card.fingerprint == (await _tokenize(harness, cvc=None)).card.fingerprint
    mastercard = await harness.vault.stub.ResolveTestCard(resolve("pm_card_mastercard"))
    assert mastercard.card.brand == common_pb2.CARD_BRAND_MASTERCARD
    declined = await harness.vault.stub.ResolveTestCard(resolve("tok_chargeDeclined"))
    reply = await harness.vault.stub.ForwardAuthorization(_forward(declined.vault_token))
    assert (reply.result.approved, reply.result.decline_code) == (False, "generic_decline")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ResolveTestCard(resolve("pm_card_nonsense"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_test_number_reads_as_its_test_id_in_test_mode_only(
    harness: VaultHarness,
) -> None:
    """The core treats a card by its test id (Radar's risk of Stripe's test cards): a test
    number given as a number gets the id of its number, and nothing else, nor a live card."""

    async def test_id_of(number: str, *, livemode: bool = False) -> str:
        request = vault_pb2.TokenizeCardRequest(
            account_id="acct_1", number=number, exp_month=12, exp_year=2030, requester="api",
            livemode=livemode,
        )  # fmt: skip
        token = (await harness.vault.stub.TokenizeCard(request)).vault_token
        details = await harness.vault.stub.GetCardDetails(
            vault_pb2.GetCardDetailsRequest(account_id="acct_1", vault_token=token, requester="t")
        )
        return details.test_id

    assert await test_id_of(VISA) == "pm_card_visa"
    assert await test_id_of("4000000000004954") == "pm_card_riskLevelHighest"
    assert await test_id_of("4100000000000019") == "pm_card_chargeDeclinedFraudulent"
    assert await test_id_of("2223003122003222") == "pm_card_mastercard"
    assert await test_id_of("4000000000000010") == ""  # a test number without a test id
    assert await test_id_of("4111111111111111") == ""
    assert await test_id_of(VISA, livemode=True) == ""


async def test_deleting_a_card_shreds_it(harness: VaultHarness) -> None:
    token = (await _tokenize(harness)).vault_token
    request = vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=token, requester="t")
    assert (await harness.vault.stub.DeleteCard(request)).deleted
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(token))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_every_decryption_is_audited_and_the_vault_database_holds_no_plaintext(
    harness: VaultHarness,
) -> None:
    token = (await _tokenize(harness)).vault_token
    harness.clock.advance(1)
    await harness.vault.stub.ForwardAuthorization(_forward(token, reference="op_audit"))
    events = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(vault_token=token)
    )
    assert [e.action for e in events.data] == [
        vault_pb2.AUDIT_ACTION_FORWARD,
        vault_pb2.AUDIT_ACTION_TOKENIZE,
    ]
    forward = events.data[0]
    assert (forward.requester, forward.purpose, forward.reference, forward.succeeded) == (
        "core", "payment_intent.confirm pi_test", "op_audit", True,
    )  # fmt: skip
    dump = await dump_database(harness.engine)
    assert "vtok_" in dump  # the dump really holds the rows
    scrubbed = dump.replace(token, "")
    assert VISA not in scrubbed
    assert VISA.encode().hex() not in dump
    # A three-digit CVC turns up by chance inside random hex (fingerprints, ids), so it is
    # searched for as a value of its own, not as any substring.
    assert re.search(r"(?<![0-9A-Za-z])314(?![0-9A-Za-z])", scrubbed) is None
    assert b"314".hex() not in re.sub(r"[0-9a-f]{40,}", "", dump)
