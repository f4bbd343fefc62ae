"""A CVC goes with one authorization only, however many forwards of its card run at once."""

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.vault import running_vault

pytestmark = pytest.mark.anyio

FORWARDS = 8
# Only a guard against a hang: every forward reaches the acquirer long before.
ARRIVAL_GUARD_S = 60.0


class GatheringAcquirer(RecordingAcquirer):
    """Answers no authorization until `expected` have arrived: every forward has read its card
    and is at the acquirer before any of them gets its answer and records it."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self._expected = expected
        self._all_arrived = asyncio.Event()

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        answer = await super().Authorize(request, context)
        if len(self.requests) >= self._expected:
            self._all_arrived.set()
        await asyncio.wait_for(self._all_arrived.wait(), ARRIVAL_GUARD_S)
        return answer


def _tokenize_with_cvc(cvc: str) -> vault_pb2.TokenizeCardRequest:
    return vault_pb2.TokenizeCardRequest(
        account_id="acct_1", number="4242424242424242", exp_month=12, exp_year=2030, cvc=cvc,
        requester="test",
    )  # fmt: skip


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
        currency="usd", reference=reference, capture=True,
        purpose="payment_intent.confirm pi_test", requester="core",
    )  # fmt: skip


async def test_of_concurrent_forwards_of_one_card_exactly_one_sends_its_cvc(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    gathering = GatheringAcquirer(FORWARDS)
    async with (
        running_acquirer(gathering) as (acquirer, target),
        running_vault(vault_engine, keys, {"acquirer": target}, clock=FixedClock(START)) as vault,
    ):
        token = (await vault.stub.TokenizeCard(_tokenize_with_cvc("314"))).vault_token
        replies = await asyncio.gather(
            *(
                vault.stub.ForwardAuthorization(_forward(token, f"op_concurrent_{number}"))
                for number in range(FORWARDS)
            )
        )
    assert all(reply.result.approved and not reply.replayed for reply in replies)
    assert len(acquirer.requests) == FORWARDS
    with_cvc = [request for request in acquirer.requests if request.HasField("cvc")]
    assert [request.cvc for request in with_cvc] == ["314"]
    async with vault_engine.connect() as db:
        stored = (
            await db.execute(
                text("SELECT cvc_ciphertext, cvc_expires_at FROM cards WHERE token = :t"),
                {"t": token},
            )
        ).one()
        audited = (
            await db.execute(
                text(
                    "SELECT count(*) FROM audit_events "
                    "WHERE action = 'forward' AND succeeded AND token = :t"
                ),
                {"t": token},
            )
        ).scalar_one()
    assert tuple(stored) == (None, None)
    assert audited == FORWARDS
