"""A payment whose card is sealed under a key version the vault's key ring no longer holds waits at
`attempt_created` (`card_key_unavailable`): the version may come back. Once an operator declares
it lost for good (`remit vault declare-key-version-lost`), the vault refuses the card as under a
retired version, and the next retry, a client's or an operator's (`remit held-requests retry`,
one more of the completer's tries), ends the attempt with what the acquirer holds for its
reference: its authorization when it holds one, else a failure as a card that can no longer be
used. Never without asking the acquirer first.

Against the real vault and the real acquirer over gRPC, on their real databases."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.grpc import AcquirerServicer
from remit.acquirer.service import AcquirerService
from remit.acquirer.tables import operations
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.payments.charges import ChargeStatus
from remit.payments.domain import NewPaymentIntent, PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.held_requests import RetryOutcome
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.network import (
    CARD_KEY_UNAVAILABLE_CODE,
    UNUSABLE_CARD_CODE,
    AuthorizationOutcome,
    GrpcCardNetwork,
)
from remit.payments.service import ConfirmParams, Done, PaymentsService, Replay
from remit.storage.engine import dispose, make_engine
from remit.vault.forwards_in_flight import forward_may_still_commit_for
from remit.vault.keystore import FileKeyStore
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2
from tests.integration.payments.test_card_deleted_mid_forward import (
    START,
    SlowFirstAuthorization,
    VaultCard,
    serving,
)
from tests.integration.payments.test_payments_service import call, respond
from tests.integration.payments.test_unopenable_card import _recovery_point
from tests.support.postgres import WorkerDatabases
from tests.support.send_budgets import forwards_leave_a_loaded_vault_time
from tests.support.vault import RunningVault, empty_vault_database, running_vault

pytestmark = pytest.mark.anyio

NUMBER = "4242424242424242"


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    forwards_leave_a_loaded_vault_time(monkeypatch)
    monkeypatch.setattr("remit.payments.service.SETTLE_PAUSE_S", 0.0)


class BeforeTheNextForward(GrpcCardNetwork):
    """The real network client, with something to happen once, just before its next
    authorization is sent to the vault (after a resumed attempt's look-up)."""

    before_forward: Callable[[], Awaitable[None]] | None = None
    # Whether `before_forward` ran: the attempt was sent to the vault again.
    happened = False

    async def authorize(self, **kwargs: Any) -> AuthorizationOutcome:
        if self.before_forward is not None:
            happen, self.before_forward = self.before_forward, None
            self.happened = True
            await happen()
        return await super().authorize(**kwargs)


@dataclass
class Through:
    payments: PaymentsService
    vault: RunningVault
    vault_clock: FixedClock
    keys: FileKeyStore
    methods: VaultCard
    network: BeforeTheNextForward


def lose_key_version_1(keys: FileKeyStore) -> None:
    """Take version 1 out of the key file behind the vault's back: removed too early, and every
    copy of the file gone with it (version 2 wraps new data keys)."""
    with keys.locked():
        keys.save(keys.load().without_version(1))


@asynccontextmanager
async def payments_through_the_vault(
    databases: WorkerDatabases, core_engine: AsyncEngine, account_id: str, tmp_path: Path,
    acquirer: AcquirerServicer,
) -> AsyncIterator[Through]:  # fmt: skip
    """pm_visa as a card the real vault holds, sealed under key version 1, which version 2
    has replaced as the one wrapping new data keys; payments through the real vault to
    `acquirer`."""
    vault_engine = make_engine(databases.vault_url, pool_size=5)
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    vault_clock = FixedClock(START)
    try:
        async with (
            serving(acquirer) as acquirer_target,
            running_vault(vault_engine, keys, {"acquirer": acquirer_target}, vault_clock) as vault,
            grpc.aio.insecure_channel(acquirer_target) as acquirer_channel,
        ):
            tokenized = await vault.stub.TokenizeCard(
                vault_pb2.TokenizeCardRequest(
                    account_id=account_id, number=NUMBER, exp_month=12, exp_year=2034,
                    cvc="123", requester="test",
                )
            )  # fmt: skip
            await vault.stub.RotateKey(vault_pb2.RotateKeyRequest(requester="operator"))
            methods = VaultCard(tokenized.vault_token)
            network = BeforeTheNextForward(
                vault.stub, acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel)
            )
            payments = PaymentsService(
                core_engine, network, methods, present=payment_intent_message
            )
            yield Through(payments, vault, vault_clock, keys, methods, network)
    finally:
        await empty_vault_database(vault_engine)
        await dispose(vault_engine)


async def _pay(
    payments: PaymentsService, account_id: str, key: str
) -> Done[PaymentIntent] | Replay:
    return await payments.create_payment_intent(
        call(account_id, key, body=b"pm_visa"),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )


async def _held_for_the_card_key(through: Through, account_id: str, key: str) -> None:
    with pytest.raises(RemitError) as held:
        await _pay(through.payments, account_id, key)
    assert held.value.code == CARD_KEY_UNAVAILABLE_CODE
    assert NUMBER[-4:] not in held.value.message
    assert await _recovery_point(through.payments._engine, key) == "attempt_created"


async def _declare_version_1_lost(vault: RunningVault) -> None:
    declared = await vault.stub.DeclareKeyVersionLost(
        vault_pb2.DeclareKeyVersionLostRequest(version=1, requester="cli:alice")
    )
    assert declared.newly_declared


def _resume(payments: PaymentsService) -> Callable[[KeyRecord], Awaitable[object]]:
    return lambda record: payments.resume_attempt(record, respond)


async def _operations_at_the_acquirer(acquirer_engine: AsyncEngine) -> int:
    async with acquirer_engine.connect() as db:
        return int(await db.scalar(select(func.count()).select_from(operations)) or 0)


async def test_a_client_retry_after_the_declaration_fails_the_attempt_the_network_never_saw(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path,
) -> None:  # fmt: skip
    acquirer = AcquirerServicer(AcquirerService(acquirer_engine))
    async with payments_through_the_vault(
        databases, core_engine, account_id, tmp_path, acquirer
    ) as through:
        lose_key_version_1(through.keys)
        await _held_for_the_card_key(through, account_id, "lost-key")
        # Retried as it is, it waits again: nothing tells a missing version from a lost one.
        await _held_for_the_card_key(through, account_id, "lost-key")

        await _declare_version_1_lost(through.vault)
        with pytest.raises(RemitError) as ended:
            await _pay(through.payments, account_id, "lost-key")

    error = ended.value
    assert (error.kind, error.error_type, error.code) == (
        ErrorKind.CARD_DECLINED,
        "card_error",
        UNUSABLE_CARD_CODE,
    )
    assert NUMBER[-4:] not in error.message
    assert await _recovery_point(core_engine, "lost-key") == RecoveryPoint.FINISHED.value
    assert error.charge is not None
    charge, _ = await through.payments.get_charge(account_id, error.charge)
    assert charge.status is ChargeStatus.FAILED
    assert charge.authorization_id is None
    assert charge.outcome is not None
    assert charge.outcome["network_status"] == "not_sent_to_network"
    assert through.methods.refused == [(account_id, through.methods.token)]
    assert await _operations_at_the_acquirer(acquirer_engine) == 0


async def test_held_requests_retry_after_the_declaration_ends_the_attempt(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path,
) -> None:  # fmt: skip
    acquirer = AcquirerServicer(AcquirerService(acquirer_engine))
    async with payments_through_the_vault(
        databases, core_engine, account_id, tmp_path, acquirer
    ) as through:
        payments = through.payments
        lose_key_version_1(through.keys)
        await _held_for_the_card_key(through, account_id, "lost-key")
        before = await payments.retry_held(account_id, "lost-key", _resume(payments))
        assert before.outcome is RetryOutcome.STILL_HELD
        assert before.request is not None
        assert before.request.last_failure is not None
        assert before.request.last_failure.code == CARD_KEY_UNAVAILABLE_CODE

        await _declare_version_1_lost(through.vault)
        after = await payments.retry_held(account_id, "lost-key", _resume(payments))

    assert after.outcome is RetryOutcome.FINISHED
    assert after.request is not None
    assert after.request.charge_id is not None
    charge, _ = await payments.get_charge(account_id, after.request.charge_id)
    assert (charge.status, charge.failure_code) == (ChargeStatus.FAILED, UNUSABLE_CARD_CODE)
    assert await _operations_at_the_acquirer(acquirer_engine) == 0


@pytest.mark.parametrize("forward_may_still_commit", [True, False])
async def test_an_authorization_the_acquirer_holds_finishes_the_attempt(
    databases: WorkerDatabases, core_engine: AsyncEngine, acquirer_engine: AsyncEngine,
    account_id: str, tmp_path: Path, forward_may_still_commit: bool,
) -> None:  # fmt: skip
    """The first forward reached the acquirer, whose statement ran past the vault's deadline
    (its answer lost), and the key version went meanwhile: the core's look-up found nothing
    yet, its resend was refused for want of the key, and the attempt waits. The acquirer's
    statement commits while the operator's retry runs, after its look-up and before it reaches
    the vault: the vault's refusal of the card is then settled by looking the reference up
    again, and the authorization stands, whether the vault still thinks its forward may
    commit (it answers that the outcome is unknown, and the core looks again) or not (it
    refuses the card, which the core forgets, and looks again)."""
    keys: list[FileKeyStore] = []

    async def lose_the_key() -> None:
        lose_key_version_1(keys[0])

    acquirer = SlowFirstAuthorization(AcquirerService(acquirer_engine), lose_the_key)
    async with payments_through_the_vault(
        databases, core_engine, account_id, tmp_path, acquirer
    ) as through:
        keys.append(through.keys)
        payments = through.payments
        await _held_for_the_card_key(through, account_id, "lost-key")
        assert acquirer.committed is not None
        late = acquirer.committed

        await _declare_version_1_lost(through.vault)
        if not forward_may_still_commit:
            through.vault_clock.advance(forward_may_still_commit_for().total_seconds() + 1)

        async def the_acquirer_commits() -> None:
            acquirer.commit.set()
            await late

        through.network.before_forward = the_acquirer_commits
        retried = await payments.retry_held(account_id, "lost-key", _resume(payments))
        replay = await _pay(payments, account_id, "lost-key")

    assert through.network.happened, "the attempt was sent to the vault again"
    assert retried.outcome is RetryOutcome.FINISHED
    authorized = late.result()
    assert isinstance(replay, Replay), "finished: a client's retry replays its answer"
    assert retried.request is not None
    assert retried.request.charge_id is not None
    charge, _ = await payments.get_charge(account_id, retried.request.charge_id)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.authorization_id == authorized.result.authorization_id
    intent = await payments.get_payment_intent(account_id, charge.payment_intent_id)
    assert intent.status is Status.SUCCEEDED
    # The card is forgotten only where the vault refused it.
    assert bool(through.methods.refused) is not forward_may_still_commit
    assert await _operations_at_the_acquirer(acquirer_engine) == 1
