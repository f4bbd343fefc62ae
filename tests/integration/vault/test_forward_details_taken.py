"""The expiry and billing details a forward sends are always ones a seal checked. A forward
reads and opens the card, then takes its CVC in one statement with its audit event; it sends the
card as the CVC was taken only when the CVC taken is not the one it read (an update re-sealed
both meanwhile), as that CVC opens under those details alone. Details changed around the vault
between the read and the taking, with the CVC read, are refused as tampered (DATA_LOSS,
audited as not sent): nothing reaches the acquirer, and the CVC taken stays destroyed. A card
with no CVC to take is sent as it was read and opened."""

from dataclasses import replace
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from remit.core.secrets import Secret
from remit.grpcutil.errors import detail_from_rpc_error
from remit.vault.crypto import (
    CVC_KEY_MARKER,
    CardBinding,
    SealFormat,
    seal_cvc,
    sealed_cvc_hour,
)
from remit.vault.repository import SqlVaultRepository
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness

pytestmark = pytest.mark.anyio

ACCOUNT = "acct_1"
# A write to the vault database, around the vault, to the columns a forward sends.
TAMPER = text(
    "UPDATE cards SET exp_year = 2044, billing_details = "
    '\'{"address": {"line1": "666 Evil St", "postal_code": "66666"}}\'::jsonb '
    "WHERE token = :t"
)


async def _tokenize(harness: VaultHarness, *, cvc: str | None = "314") -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id=ACCOUNT, number="4242424242424242", exp_month=4, exp_year=2030,
        billing_details=common_pb2.BillingDetails(
            name="Ada", address=common_pb2.Address(line1="1 Old Rd", postal_code="10001")
        ),
        requester="test",
    )  # fmt: skip
    if cvc is not None:
        request.cvc = cvc
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id=ACCOUNT, vault_token=token, destination="acquirer", amount=100,
        currency="usd", reference=reference, purpose="test", requester="core",
    )  # fmt: skip


def _tamper_before_the_taking(
    harness: VaultHarness, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    take = SqlVaultRepository.audit_forward_taking_cvc

    async def tampered_first(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        async with harness.engine.begin() as db:
            await db.execute(TAMPER, {"t": token})
        return await take(self, *args, **kwargs)

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", tampered_first)


async def _forward_events(harness: VaultHarness) -> list[tuple[str, bool]]:
    listed = await harness.vault.stub.ListAuditEvents(
        vault_pb2.ListAuditEventsRequest(action=vault_pb2.AUDIT_ACTION_FORWARD, limit=100)
    )
    return sorted((e.purpose, e.succeeded) for e in listed.data)


async def test_details_changed_around_the_vault_before_the_cvc_is_taken_are_refused(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await _tokenize(harness)
    _tamper_before_the_taking(harness, token, monkeypatch)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    detail = detail_from_rpc_error(caught.value)
    assert detail is not None
    assert detail.code == "vault_ciphertext_invalid"
    assert harness.acquirer.requests == []
    assert await _forward_events(harness) == [
        ("test", True),  # committed with the taking, before the card would have left
        ("test: not sent, the card failed its seals", False),
    ]
    async with harness.engine.connect() as db:
        card = await SqlVaultRepository(db).get_card(token)
    assert card is not None
    assert card.sealed.cvc_ciphertext is None  # the CVC taken stays destroyed


async def test_a_card_without_a_cvc_is_sent_with_the_details_its_seals_checked(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No CVC is taken, so nothing is read again: what goes is the card as read and opened,
    whatever was written to its row after."""
    token = await _tokenize(harness, cvc=None)
    _tamper_before_the_taking(harness, token, monkeypatch)

    reply = await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert reply.result.approved
    [sent] = harness.acquirer.requests
    assert (sent.exp_month, sent.exp_year) == (4, 2030)
    assert (sent.billing_address.line1, sent.billing_address.postal_code) == ("1 Old Rd", "10001")


async def test_a_cvc_taken_with_a_seal_binding_no_details_is_refused(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A card read sealed with its details, whose CVC is taken in an older format (no re-seal
    goes back to one), with other details: nothing would check them."""
    token = await _tokenize(harness)
    take = SqlVaultRepository.audit_forward_taking_cvc

    async def taken_downgraded(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        taken = await take(self, *args, **kwargs)
        assert taken is not None
        hour = sealed_cvc_hour(taken.sealed)
        assert hour is not None
        # A good seal of the CVC, but one that binds the account alone.
        binding = CardBinding(token, ACCOUNT, SealFormat.ACCOUNT_BOUND)
        sealed = seal_cvc(harness.keys.load().cvc_keys[hour], binding, Secret("314"))
        return replace(taken, sealed=sealed, seal_format=SealFormat.ACCOUNT_BOUND, exp_year=2044)

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", taken_downgraded)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert harness.acquirer.requests == []
    assert ("test: not sent, the card failed its seals", False) in await _forward_events(harness)


async def test_a_taken_cvc_no_key_opens_does_not_carry_its_details_along(
    harness: VaultHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CVC taken under an hour with no CVC key is sent without (as a CVC whose key is gone
    is), and nothing then checked the details taken with it: the card goes as read."""
    token = await _tokenize(harness)
    take = SqlVaultRepository.audit_forward_taking_cvc

    async def taken_keyless(self: SqlVaultRepository, *args: Any, **kwargs: Any) -> Any:
        taken = await take(self, *args, **kwargs)
        assert taken is not None
        hour = sealed_cvc_hour(taken.sealed)
        assert hour is not None
        # The same seal, its header naming an hour a year on, whose key no ring holds.
        header_bytes = len(CVC_KEY_MARKER) + 4
        keyless = (
            CVC_KEY_MARKER + (hour + 24 * 365).to_bytes(4, "big") + taken.sealed[header_bytes:]
        )
        assert sealed_cvc_hour(keyless) not in harness.keys.load().cvc_keys
        return replace(
            taken, sealed=keyless, exp_year=2044,
            billing_details={"address": {"line1": "666 Evil St", "postal_code": "66666"}},
        )  # fmt: skip

    monkeypatch.setattr(SqlVaultRepository, "audit_forward_taking_cvc", taken_keyless)

    await harness.vault.stub.ForwardAuthorization(_forward(token, "op_1"))

    [sent] = harness.acquirer.requests
    assert (sent.exp_month, sent.exp_year) == (4, 2030)
    assert (sent.billing_address.line1, sent.billing_address.postal_code) == ("1 Old Rd", "10001")
