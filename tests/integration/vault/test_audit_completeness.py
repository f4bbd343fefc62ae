"""Every access to card data is in the vault's audit log, granted or refused: who asked, for
which token, for what, and how it ended; never the card's number or CVC."""

import re
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness

pytestmark = pytest.mark.anyio

VISA = "4242424242424242"
CVC = "314"


async def _tokenize(harness: VaultHarness, number: str = VISA) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number=number, exp_month=12, exp_year=2030, cvc=CVC,
        requester="test",
    )  # fmt: skip
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _details(token: str, account: str = "acct_1") -> vault_pb2.GetCardDetailsRequest:
    return vault_pb2.GetCardDetailsRequest(account_id=account, vault_token=token, requester="pm")


def _forward(token: str, **changes: object) -> vault_pb2.ForwardAuthorizationRequest:
    fields: dict[str, object] = {
        "account_id": "acct_1", "vault_token": token, "destination": "acquirer",
        "amount": 2000, "currency": "usd", "reference": "op_audited", "capture": True,
        "purpose": "payment_intent.confirm pi_test", "requester": "core", **changes,
    }  # fmt: skip
    return vault_pb2.ForwardAuthorizationRequest(**fields)  # type: ignore[arg-type]


async def _audited(harness: VaultHarness, action: str) -> list[tuple[Any, ...]]:
    async with harness.engine.connect() as db:
        rows = await db.execute(
            text(
                "SELECT requester, token, account_id, purpose, reference, succeeded, key_version "
                "FROM audit_events WHERE action = :action"
            ),
            {"action": action},
        )
        # The harness's clock stands still: the rows are compared in no particular order.
        return sorted(tuple(row) for row in rows)


async def _audit_log_as_text(harness: VaultHarness) -> str:
    async with harness.engine.connect() as db:
        rows = await db.execute(text("SELECT a::text FROM audit_events a"))
        return "\n".join(str(row[0]) for row in rows)


async def test_card_detail_look_ups_are_audited_granted_or_refused(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    deleted = await _tokenize(harness, number="5555555555554444")
    await harness.vault.stub.DeleteCard(
        vault_pb2.DeleteCardRequest(account_id="acct_1", vault_token=deleted, requester="t")
    )
    await harness.vault.stub.GetCardDetails(_details(token))
    for refused in (_details(token, "acct_2"), _details(deleted), _details("vtok_unknown")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.GetCardDetails(refused)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _audited(harness, "get_details") == sorted(
        [
            ("pm", token, "acct_1", "get_details", "", True, 1),
            ("pm", token, "acct_2", "get_details", "", False, 0),
            ("pm", deleted, "acct_1", "get_details", "", False, 0),
            ("pm", "vtok_unknown", "acct_1", "get_details", "", False, 0),
        ]
    )


async def test_forwards_refused_before_the_card_is_read_are_audited(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    refusals = (
        (_forward(token, reference=""), "reference"),
        (_forward(token, amount=0), "amount"),
        (_forward(token, purpose=""), "purpose"),
        (_forward("vtok_unknown"), None),
    )
    for request, param in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.ForwardAuthorization(request)
        expected = grpc.StatusCode.NOT_FOUND if param is None else grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.code() == expected
    assert harness.acquirer.requests == []
    assert await _audited(harness, "forward") == sorted([
        ("core", token, "acct_1", "payment_intent.confirm pi_test", "", False, 0),
        ("core", token, "acct_1", "payment_intent.confirm pi_test", "op_audited", False, 0),
        ("core", token, "acct_1", "", "op_audited", False, 0),
        ("core", "vtok_unknown", "acct_1", "payment_intent.confirm pi_test", "op_audited",
         False, 0),
    ])  # fmt: skip


async def test_a_refused_deletion_is_audited(harness: VaultHarness) -> None:
    token = await _tokenize(harness)
    for account, named in (("acct_2", token), ("acct_1", "vtok_unknown")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await harness.vault.stub.DeleteCard(
                vault_pb2.DeleteCardRequest(account_id=account, vault_token=named, requester="t")
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await _audited(harness, "delete") == sorted(
        [
            ("t", token, "acct_2", "delete", "", False, 0),
            ("t", "vtok_unknown", "acct_1", "delete", "", False, 0),
        ]
    )


async def test_the_audit_log_never_holds_the_card_number_or_cvc(harness: VaultHarness) -> None:
    token = await _tokenize(harness)
    await harness.vault.stub.GetCardDetails(_details(token))
    await harness.vault.stub.ForwardAuthorization(_forward(token))
    with pytest.raises(grpc.aio.AioRpcError):
        await harness.vault.stub.ForwardAuthorization(_forward(token, amount=0))
    log = await _audit_log_as_text(harness)
    assert log.count(token) == 4  # the rows are really there
    assert VISA not in log
    assert re.search(rf"(?<![0-9A-Za-z]){CVC}(?![0-9A-Za-z])", log.replace(token, "")) is None


async def test_a_test_id_is_audited_once_when_its_card_is_sealed_not_at_every_resolution(
    harness: VaultHarness,
) -> None:
    """Resolving a test id hands out a public test number's token and details, decrypting
    nothing: only its first resolution, which seals the number, is recorded (as a
    tokenization). Every test-card payment resolves one; a record each would be a database
    write on each for nothing an audit needs."""
    request = vault_pb2.ResolveTestCardRequest(
        account_id="acct_1", test_id="pm_card_visa", requester="core"
    )
    first = await harness.vault.stub.ResolveTestCard(request)
    again = await harness.vault.stub.ResolveTestCard(request)
    assert again.vault_token == first.vault_token
    assert await _audited(harness, "tokenize") == [
        ("core", first.vault_token, "acct_1", "tokenize", "", True, 1)
    ]
    assert await _audited(harness, "resolve_test_card") == []
