"""A card deleted while its forward is still at the acquirer does not fail the payment as never
sent: the vault answers that the outcome is unknown while that forward may still commit, so the
attempt waits at `attempt_created`, and a later look-up finds the authorization. Once nothing it
forwarded can still commit, the vault's refusal ends the attempt as before."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.faults import FaultConfig
from remit.acquirer.grpc import AcquirerServicer, acquirer_interceptors
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.domain import NewPaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint
from remit.payments.network import UNUSABLE_CARD_CODE, GrpcCardNetwork
from remit.payments.ports import ChargeableCard
from remit.payments.service import ConfirmParams, Done, PaymentsService
from remit.storage.engine import dispose, make_engine
from remit.vault.forwards_in_flight import forward_may_still_commit_for
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, respond
from tests.integration.payments.test_unopenable_card import _recovery_point
from tests.support.postgres import WorkerDatabases
from tests.support.send_budgets import forwards_leave_a_loaded_vault_time
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _forwards_leave_a_loaded_vault_time(monkeypatch: pytest.MonkeyPatch) -> None:
    forwards_leave_a_loaded_vault_time(monkeypatch)


START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class SlowFirstAuthorization(AcquirerServicer):
    """The real acquirer, but its first authorization's statement runs past the vault's
    deadline: the vault gets no answer (UNAVAILABLE), the card is deleted meanwhile, and the
    authorization commits only once `commit` is set."""

    def __init__(self, service: AcquirerService, delete_card: Any) -> None:
        super().__init__(service)
        self._delete_card = delete_card
        self.commit = asyncio.Event()
        self.committed: asyncio.Task[Any] | None = None

    async def Authorize(  # noqa: N802 (the RPC name)
        self, request: acquirer_pb2.AuthorizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> acquirer_pb2.AuthorizeResponse:
        if self.committed is not None:
            return await super().Authorize(request, context)

        async def later() -> acquirer_pb2.AuthorizeResponse:
            await self.commit.wait()
            return await AcquirerServicer.Authorize(self, request, context)

        self.committed = asyncio.ensure_future(later())
        await self._delete_card()
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the answer was lost")
        raise AssertionError("abort raises")


@asynccontextmanager
async def serving(servicer: AcquirerServicer) -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=acquirer_interceptors(FaultConfig()))
    acquirer_pb2_grpc.add_AcquirerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


class VaultCard(FakeMethods):
    """pm_visa, as a card the vault holds under `token`."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    async def chargeable_card(self, account_id: str, payment_method_id: str) -> ChargeableCard:
        card = await super().chargeable_card(account_id, payment_method_id)
        return replace(card, vault_token=self.token)

    async def attempt_vault_token(self, account_id: str, payment_method_id: str) -> str:
        return self.token


# The payments, the acquirer, the vault's clock and the card.
Through = tuple[PaymentsService, SlowFirstAuthorization, FixedClock, VaultCard]


@asynccontextmanager
async def payment_through_the_vault(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path,
) -> AsyncIterator[Through]:  # fmt: skip
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    vault_clock = FixedClock(START)
    vault: RunningVault | None = None
    methods = VaultCard("")

    async def delete_card() -> None:
        assert vault is not None
        deleted = await vault.stub.DeleteCard(
            vault_pb2.DeleteCardRequest(
                account_id=account_id, vault_token=methods.token, requester="test"
            )
        )
        assert deleted.deleted

    acquirer = SlowFirstAuthorization(AcquirerService(acquirer_engine), delete_card)
    try:
        async with (
            serving(acquirer) as acquirer_target,
            running_vault(vault_engine, keys, {"acquirer": acquirer_target}, vault_clock) as vault,
            grpc.aio.insecure_channel(acquirer_target) as acquirer_channel,
        ):
            tokenized = await vault.stub.TokenizeCard(
                vault_pb2.TokenizeCardRequest(
                    account_id=account_id, number="4242424242424242", exp_month=12,
                    exp_year=2034, cvc="123", requester="test",
                )
            )  # fmt: skip
            methods.token = tokenized.vault_token
            network = GrpcCardNetwork(
                vault.stub, acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel)
            )
            payments = PaymentsService(
                core_engine, network, methods, present=payment_intent_message
            )
            yield payments, acquirer, vault_clock, methods
            if acquirer.committed is not None:
                acquirer.commit.set()
                await acquirer.committed
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


async def _pay(payments: PaymentsService, account_id: str, key: str) -> object:
    return await payments.create_payment_intent(
        call(account_id, key, body=b"pm_visa"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )


async def test_a_forward_still_at_the_acquirer_when_its_card_is_deleted_is_found_later(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr("remit.payments.service.SETTLE_PAUSE_S", 0.0)
    async with payment_through_the_vault(
        databases, core_engine, acquirer_engine, account_id, tmp_path
    ) as (payments, acquirer, _, methods):
        # The forward's answer is lost and the card deleted; the resend is refused by the
        # vault, and the look-up runs before the acquirer commits.
        with pytest.raises(RemitError) as unknown:
            await _pay(payments, account_id, "mid-forward")
        assert (unknown.value.kind, unknown.value.should_retry) == (ErrorKind.UNAVAILABLE, True)
        assert await _recovery_point(core_engine, "mid-forward") == "attempt_created"
        assert methods.refused == []
        # The acquirer commits the authorization; the retry finds it, and the payment stands.
        acquirer.commit.set()
        assert acquirer.committed is not None
        authorized = await acquirer.committed
        retried = await _pay(payments, account_id, "mid-forward")
    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
    assert retried.value.latest_charge_id is not None
    charge, _ = await payments.get_charge(account_id, retried.value.latest_charge_id)
    assert charge.authorization_id == authorized.result.authorization_id


async def test_once_no_forward_can_still_commit_the_refusal_ends_the_attempt(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The lost forward never reached the acquirer's database (its statement was cancelled):
    once it could no longer commit, the vault refuses, nothing is found, and the attempt fails
    as a card that can no longer be used, instead of waiting for ever."""
    monkeypatch.setattr("remit.payments.service.SETTLE_PAUSE_S", 0.0)
    async with payment_through_the_vault(
        databases, core_engine, acquirer_engine, account_id, tmp_path
    ) as (payments, acquirer, vault_clock, methods):
        with pytest.raises(RemitError):
            await _pay(payments, account_id, "never-committed")
        assert acquirer.committed is not None
        acquirer.committed.cancel()
        acquirer.committed = None
        vault_clock.advance(forward_may_still_commit_for().total_seconds() + 1)
        with pytest.raises(RemitError) as refused:
            await _pay(payments, account_id, "never-committed")
    assert refused.value.code == UNUSABLE_CARD_CODE
    assert await _recovery_point(core_engine, "never-committed") == RecoveryPoint.FINISHED.value
    assert methods.refused == [(account_id, methods.token)]
