"""The vault forwards an authorization only with the time the acquirer is allowed still ahead of
its caller's deadline: with less, the acquirer's answer could come after the caller gave up,
and be lost with the card's CVC. Such a forward is refused before the card is opened, marked
as sent nowhere (`remit.grpcutil.send_time`)."""

import grpc
import pytest
from sqlalchemy import text

from remit.config import DEFAULT_NETWORK_TIMEOUT_S
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.send_time import NOT_SENT_CODE, refused_as_not_sent
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import VaultHarness

pytestmark = pytest.mark.anyio


async def _tokenize(harness: VaultHarness) -> str:
    request = vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number="4242424242424242", exp_month=12, exp_year=2030, cvc="314",
        requester="test",
    )  # fmt: skip
    return (await harness.vault.stub.TokenizeCard(request)).vault_token


def _forward(token: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference="ch_short", capture=True,
        purpose="payment_intent.confirm pi_test", requester="core",
    )  # fmt: skip


async def _forwards_audited(harness: VaultHarness) -> list[tuple[bool, int]]:
    async with harness.engine.connect() as db:
        rows = await db.execute(
            text("SELECT succeeded, key_version FROM audit_events WHERE action = 'forward'")
        )
        return [(row.succeeded, row.key_version) for row in rows]


async def _cvc_kept(harness: VaultHarness, token: str) -> bool:
    async with harness.engine.connect() as db:
        cvc = await db.execute(
            text("SELECT cvc_ciphertext FROM cards WHERE token = :t"), {"t": token}
        )
        return cvc.scalar_one() is not None


async def test_a_forward_with_less_time_than_a_send_needs_is_refused_unsent(
    harness: VaultHarness,
) -> None:
    token = await _tokenize(harness)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        # Less than the acquirer's timeout (10 s) and the margin to answer.
        await harness.vault.stub.ForwardAuthorization(
            _forward(token), timeout=DEFAULT_NETWORK_TIMEOUT_S
        )
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.code == NOT_SENT_CODE
    assert detail.should_retry
    assert refused_as_not_sent(refused.value)

    assert harness.acquirer.requests == [], "nothing at the acquirer"
    # Audited as a forward refused before any card was opened (no key version), and the CVC,
    # never opened, is still there for the retry.
    assert await _forwards_audited(harness) == [(False, 0)]
    assert await _cvc_kept(harness, token)

    # With the time it needs, the same forward goes, with its CVC.
    reply = await harness.vault.stub.ForwardAuthorization(_forward(token), timeout=30)
    assert reply.result.approved
    [sent] = harness.acquirer.requests
    assert sent.cvc == "314"
