"""The acquirer's message in a forwarded authorization's answer is kept masked: the vault
records the answer for replays (`forwards.result`) and hands it on to payments, which store it
as a charge's failure_message; a card number the acquirer quotes must reach neither."""

from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2
from remit_api.common.v1 import common_pb2
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.fake_acquirer import RecordingAcquirer, running_acquirer
from tests.support.vault import running_vault

pytestmark = pytest.mark.anyio


class QuotingAcquirer(RecordingAcquirer):
    """Declines every card, quoting its number in the message, as a careless acquirer may."""

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        self.requests.append(request)
        return acquirer_pb2.AuthorizeResponse(
            result=acquirer_pb2.AuthorizationResult(
                approved=False,
                network_status=common_pb2.NETWORK_STATUS_DECLINED_BY_NETWORK,
                code="card_declined",
                decline_code="generic_decline",
                message=f"Card {request.card_number} was declined.",
                operation_id="op_1",
            )
        )


async def test_a_card_number_the_acquirer_quotes_is_recorded_and_answered_masked(
    vault_engine: AsyncEngine, tmp_path: Path
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    async with (
        running_acquirer(QuotingAcquirer()) as (_, target),
        running_vault(vault_engine, keys, {"acquirer": target}, clock=FixedClock(START)) as vault,
    ):
        token = (
            await vault.stub.TokenizeCard(
                vault_pb2.TokenizeCardRequest(account_id="acct_1", number="4242424242424242",
                                              exp_month=12, exp_year=2030, requester="test")
            )
        ).vault_token  # fmt: skip
        forwarded = await vault.stub.ForwardAuthorization(
            vault_pb2.ForwardAuthorizationRequest(
                account_id="acct_1", vault_token=token, destination="acquirer", amount=2000,
                currency="usd", reference="op_quoted", capture=True,
                purpose="payment_intent.confirm pi_test", requester="core",
            )
        )  # fmt: skip
    async with vault_engine.connect() as db:
        [recorded] = (await db.execute(text("SELECT result FROM forwards"))).scalars().all()
    assert forwarded.result.message == "Card [card ****4242] was declined."
    stored = vault_pb2.ForwardedAuthorization.FromString(recorded)
    assert stored.message == "Card [card ****4242] was declined."
    assert b"4242424242424242" not in bytes(recorded)
