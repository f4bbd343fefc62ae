"""A card whose data key is wrapped under a key version this vault cannot use (removed from the
key ring, or retired: a card not yet re-wrapped during a rotation) cannot have its binding to
its account checked. That is no sign of tampering: its details and its test id's resolution
are answered from the plain columns and audited as unchecked, its deletion is refused as a
precondition naming the key version, and a listing leaves it out without stalling. A row given
to another account is still refused as tampered."""

import logging

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.protoconv import timestamp
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
        # Details: answered from the plain columns, the binding unchecked.
        for token in old_cards:
            assert (await stub.GetCardDetails(_details(token))).card.last4 == "4242"
        again = await stub.ResolveTestCard(
            vault_pb2.ResolveTestCardRequest(account_id="acct_1", test_id="tok_visa", requester="t")
        )
        assert again.vault_token == test_card.vault_token

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
        assert (await stub.GetCardDetails(_details(old_cards[0]))).card.last4 == "4242"

        # The listing leaves the old cards out and goes on to the ones after them.
        listed = await stub.ListCardsCreatedBefore(
            vault_pb2.ListCardsCreatedBeforeRequest(
                created_before=timestamp(harness.clock.now()), limit=1, requester="worker"
            )
        )
        assert [card.vault_token for card in listed.data] == [new_card]

        # A row given to another account, under a key version still there, is tampering.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCardDetails(_details(moved, "acct_2"))
        assert caught.value.code() == grpc.StatusCode.DATA_LOSS

    unavailable = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(unavailable) == 1
    assert "version 1" in unavailable[0].getMessage()
    binding_failures = [r.getMessage() for r in caplog.records if "binding check" in r.getMessage()]
    assert binding_failures == [
        f"card {moved} failed its binding check for a listing",
        f"card {moved} failed its binding check for get_details",
    ]
    assert VISA not in caplog.text

    unchecked = f"binding not checked, key 'card-kek' version 1 unavailable ({code})"
    details = await _audited(harness, vault_pb2.AUDIT_ACTION_GET_DETAILS)
    assert sorted(details) == sorted(
        [(token, True, f"get_details: {unchecked}") for token in [*old_cards, old_cards[0]]]
        + [(moved, False, "get_details")]
    )
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_RESOLVE_TEST_CARD) == [
        (test_card.vault_token, True, f"resolve tok_visa: {unchecked}")
    ]
    assert await _audited(harness, vault_pb2.AUDIT_ACTION_DELETE) == [
        (old_cards[0], False, f"delete refused: {unchecked}")
    ]
    left_out = [e for e in await _audited(harness, vault_pb2.AUDIT_ACTION_LIST_CARDS) if e[0]]
    assert sorted(left_out) == sorted(
        [(token, False, f"left out of a listing: {unchecked}") for token in old_cards]
        + [(moved, False, "left out of a listing: its seals do not name its account")]
    )
