"""The acquirer declines a card past its expiry (`expired_card`), and the vault sends the expiry
it holds: a card reissued with a new expiry is declined until the new expiry reaches the vault
(`UpdateCardDetails`), and approved after. The real acquirer over gRPC, on the vault's clock."""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.vault.keystore import FileKeyStore
from remit_api.vault.v1 import vault_pb2
from tests.integration.vault.conftest import START
from tests.support.vault import RunningVault, running_vault

pytestmark = pytest.mark.anyio

ACCOUNT = "acct_1"


@pytest.fixture
async def vault(
    vault_engine: AsyncEngine, acquirer_engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[tuple[RunningVault, FixedClock]]:
    clock = FixedClock(START)
    server = grpc.aio.server(interceptors=acquirer_interceptors(FaultConfig()))
    acquirer_registration(AcquirerService(acquirer_engine, clock)).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    try:
        async with running_vault(
            vault_engine, keys, {"acquirer": f"127.0.0.1:{port}"}, clock=clock
        ) as running:
            yield running, clock
    finally:
        await server.stop(0)


def _forward(token: str, reference: str) -> vault_pb2.ForwardAuthorizationRequest:
    return vault_pb2.ForwardAuthorizationRequest(
        account_id=ACCOUNT, vault_token=token, destination="acquirer", amount=1500,
        currency="usd", reference=reference, capture=True, purpose="test", requester="core",
    )  # fmt: skip


async def test_a_reissued_cards_new_expiry_at_the_vault_ends_its_expired_card_declines(
    vault: tuple[RunningVault, FixedClock],
) -> None:
    running, clock = vault
    stored = await running.stub.TokenizeCard(
        vault_pb2.TokenizeCardRequest(
            account_id=ACCOUNT,
            number="4242424242424242",
            exp_month=START.month,
            exp_year=START.year,
            requester="test",
        )
    )
    clock.advance(timedelta(days=40).total_seconds())  # the card's month is over

    expired = await running.stub.ForwardAuthorization(_forward(stored.vault_token, "op_1"))
    await running.stub.UpdateCardDetails(
        vault_pb2.UpdateCardDetailsRequest(
            account_id=ACCOUNT,
            vault_token=stored.vault_token,
            requester="core",
            exp_month=START.month,
            exp_year=START.year + 3,
        )
    )
    reissued = await running.stub.ForwardAuthorization(_forward(stored.vault_token, "op_2"))

    assert (expired.result.approved, expired.result.code) == (False, "expired_card")
    assert reissued.result.approved
