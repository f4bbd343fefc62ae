"""A request waiting on a step at the network longer than its key's lease keeps its key: the
completer does not take the request over, a client's retry is told it is still in progress
(409), and the request itself finishes with the network's answer. One step can last several
leases at the default settings (`remit.payments.step_bounds`).

The keys' leases follow the service's clock, which only the test moves; the renewals come every
third of a (here short) lease in real time."""

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.payments import idempotency, key_heartbeat
from remit.payments.domain import CaptureMethod, PaymentIntent, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.network import (
    CARDHOLDER_INITIATED,
    AuthorizationOutcome,
    OperationOutcome,
    StoredCredential,
)
from remit.payments.service import Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LEASE_S = 0.3
# Long enough for several renewals, however slowly this machine runs them.
RENEWED_WITHIN_S = 10.0


@dataclass
class NetworkThatWaits(FakeNetwork):
    """Authorizations and voids wait for `answer` once `waits` is set."""

    waits: bool = False
    waiting: asyncio.Event = field(default_factory=asyncio.Event)
    answer: asyncio.Event = field(default_factory=asyncio.Event)

    async def _wait(self) -> None:
        if self.waits:
            self.waiting.set()
            await self.answer.wait()

    async def authorize(
        self,
        *,
        account_id: str,
        vault_token: str,
        amount_minor: int,
        currency: str,
        reference: str,
        capture: bool,
        purpose: str,
        three_d_secure_authenticated: bool = False,
        stored_credential: StoredCredential = CARDHOLDER_INITIATED,
    ) -> AuthorizationOutcome:
        await self._wait()
        return await super().authorize(
            account_id=account_id,
            vault_token=vault_token,
            amount_minor=amount_minor,
            currency=currency,
            reference=reference,
            capture=capture,
            purpose=purpose,
            three_d_secure_authenticated=three_d_secure_authenticated,
            stored_credential=stored_credential,
        )

    async def void(self, *, authorization_id: str, reference: str) -> OperationOutcome:
        await self._wait()
        return await super().void(authorization_id=authorization_id, reference=reference)


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMIT_IDEMPOTENCY_LEASE_S", str(LEASE_S))


async def _locked_until(engine: AsyncEngine, key: str) -> datetime | None:
    async with engine.connect() as db:
        found = await db.execute(
            select(idempotency_keys.c.locked_until).where(idempotency_keys.c.key == key)
        )
    value = found.scalar_one()
    assert value is None or isinstance(value, datetime)
    return value


async def _renewed_past(engine: AsyncEngine, key: str, moment: datetime) -> None:
    """Wait until the key's lease reaches past `moment` (a renewal since the clock moved)."""
    deadline = asyncio.get_running_loop().time() + RENEWED_WITHIN_S
    while asyncio.get_running_loop().time() < deadline:
        locked_until = await _locked_until(engine, key)
        if locked_until is not None and locked_until > moment:
            return
        await asyncio.sleep(LEASE_S / 6)
    raise AssertionError(f"the lease of {key} was not renewed past {moment}")


async def _completer_claims(engine: AsyncEngine, now: datetime) -> list[str]:
    async with engine.begin() as db:
        return [record.key for record in await idempotency.claim_abandoned(db, now=now, limit=10)]


def _service(engine: AsyncEngine, network: FakeNetwork, clock: FixedClock) -> PaymentsService:
    return PaymentsService(
        engine, network, FakeMethods(), present=payment_intent_message, clock=clock
    )


async def test_an_authorization_longer_than_the_lease_keeps_its_key(
    core_engine: AsyncEngine, account_id: str, short_lease: None
) -> None:
    clock, network = FixedClock(T0), NetworkThatWaits(waits=True)
    payments = _service(core_engine, network, clock)
    paying = asyncio.create_task(pay(payments, account_id, "slow"))
    await network.waiting.wait()

    clock.advance(3 * LEASE_S)  # the authorization has outlasted three leases
    await _renewed_past(core_engine, "slow", clock.now())
    assert await _completer_claims(core_engine, clock.now()) == []
    with pytest.raises(RemitError) as retried:
        await pay(payments, account_id, "slow")
    assert retried.value.code == "idempotency_key_in_use"

    network.answer.set()
    intent = await paying
    assert intent.status is Status.SUCCEEDED
    assert len(network.sent) == 1
    assert network.looked_up == []  # nobody else settled the authorization meanwhile


async def test_a_void_longer_than_the_lease_keeps_its_cancel_s_key(
    core_engine: AsyncEngine, account_id: str, short_lease: None
) -> None:
    clock, network = FixedClock(T0), NetworkThatWaits()
    payments = _service(core_engine, network, clock)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    network.waits = True

    async def cancel() -> Done[PaymentIntent] | Replay:
        return await payments.cancel_payment_intent(
            call(account_id, "cancel", endpoint="CancelPaymentIntent"), held.id, None, respond
        )

    canceling = asyncio.create_task(cancel())
    await network.waiting.wait()

    clock.advance(3 * LEASE_S)
    await _renewed_past(core_engine, "cancel", clock.now())
    assert await _completer_claims(core_engine, clock.now()) == []

    network.answer.set()
    canceled = await canceling
    assert isinstance(canceled, Done)
    assert canceled.value.status is Status.CANCELED


async def test_a_request_stopped_mid_step_keeps_its_key_until_the_step_ends_then_lets_it_go(
    core_engine: AsyncEngine, account_id: str, short_lease: None
) -> None:
    """Its caller gone, the authorization goes on to its answer (`_outliving_its_caller`), with
    the key held and renewed meanwhile, so no retry or completer sends it again; once the
    answer is recorded, the key is let go and renewed no more."""
    clock, network = FixedClock(T0), NetworkThatWaits(waits=True)
    payments = _service(core_engine, network, clock)
    paying = asyncio.create_task(pay(payments, account_id, "stopped"))
    await network.waiting.wait()
    paying.cancel()  # its caller went away
    with pytest.raises(asyncio.CancelledError):
        await paying

    held = await _locked_until(core_engine, "stopped")
    assert held is not None
    clock.advance(3 * LEASE_S)
    await _renewed_past(core_engine, "stopped", clock.now())
    assert await _completer_claims(core_engine, clock.now()) == []

    network.answer.set()
    await payments.drain(10)
    assert await _locked_until(core_engine, "stopped") is None
    await asyncio.sleep(LEASE_S)  # a renewal still running would lock it again meanwhile
    assert await _locked_until(core_engine, "stopped") is None


async def test_renewals_stop_once_a_step_runs_longer_than_any_step_can(
    core_engine: AsyncEngine,
    account_id: str,
    short_lease: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A request stuck on something no timeout bounds does not hold its key for ever."""
    monkeypatch.setattr(key_heartbeat, "longest_step_s", lambda: LEASE_S / 2)
    clock, network = FixedClock(T0), NetworkThatWaits(waits=True)
    payments = _service(core_engine, network, clock)
    paying = asyncio.create_task(pay(payments, account_id, "stuck"))
    try:
        await network.waiting.wait()
        # Past the longest step, the renewals end, saying so. Waited for rather than slept
        # for: a renewal begun before then but slowed past the clock's move below would hold
        # the key past it.
        deadline = asyncio.get_running_loop().time() + RENEWED_WITHIN_S
        while "its key's lease is no longer renewed" not in caplog.text:
            assert asyncio.get_running_loop().time() < deadline, "the renewals went on"
            await asyncio.sleep(LEASE_S / 6)
        clock.advance(3 * LEASE_S)
        # A renewal now would hold the key past the clock's now.
        await asyncio.sleep(LEASE_S)
        assert await _completer_claims(core_engine, clock.now()) == ["stuck"]
    finally:
        paying.cancel()
        with pytest.raises((asyncio.CancelledError, RemitError)):
            await paying
