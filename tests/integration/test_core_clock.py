"""The core tells the time by the database's clock, never its host's: a core whose host clock
is off must neither take over a request another core still runs, nor hold an abandoned one,
nor stamp an authorization, its expiry's due time or a new object off the database's time."""

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.config import PlatformConfig, from_env
from remit.core.clock import SystemClock
from remit.core.errors import RemitError
from remit.core_process import CoreServices, prepare_core
from remit.payments.authorization_age import AUTHORIZATION_VALIDITY
from remit.payments.domain import CaptureMethod, NewPaymentIntent
from remit.payments.grpc import payment_intent_message
from remit.payments.idempotency import RecoveryPoint, digest
from remit.payments.keyed import Done
from remit.payments.service import EXPIRE_JOB, PaymentsService
from remit.payments.tables import charges, idempotency_keys
from remit.payments.wiring import payment_hooks
from remit.radar.gate import Radar
from remit.worker.tables import jobs
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork
from tests.support.postgres import WorkerDatabases

# How far a core's time may be from the database's between its reads: a read is taken
# somewhere within its round trip, and one whose round trip took longer than MAX_ROUND_TRIP_S
# does not replace the estimate (`remit.storage.database_clock`); but the first read is the
# estimate, however long a loaded machine made its round trip. The hosts' clocks here are days
# off, so a bound of a minute still tells the database's time from theirs.
READ_ERROR = timedelta(minutes=1)

pytestmark = pytest.mark.anyio
HOST_OFF_BY = timedelta(days=3)
BODY = b"create"


async def _database_now(engine: AsyncEngine) -> datetime:
    async with engine.connect() as db:
        value = (await db.execute(select(func.clock_timestamp()))).scalar_one()
    assert isinstance(value, datetime)
    return value


def _set_host_clock_off(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """The host's clock, as everything that tells the time by it reads it, `by` off."""
    host_now = SystemClock.now
    monkeypatch.setattr(SystemClock, "now", lambda self: host_now(self) + by)


@pytest.fixture
async def account_id(core_engine: AsyncEngine) -> str:
    return (await AccountsService(core_engine).create_account()).account.id


@pytest.fixture
def config(databases: WorkerDatabases, tmp_path: Path) -> PlatformConfig:
    return from_env(
        {
            "DATABASE_URL": databases.core_url,
            "REMIT_DATA_DIR": str(tmp_path),
            "REMIT_INTERNAL_TOKEN": "clock-test-token",
        }
    )


async def _core(core_engine: AsyncEngine, config: PlatformConfig) -> AsyncIterator[CoreServices]:
    core = await prepare_core(core_engine, config)
    try:
        yield core
    finally:
        await core.close()


@pytest.fixture
async def core_ahead(
    core_engine: AsyncEngine, config: PlatformConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CoreServices]:
    """The core as its process builds it, on a host whose clock runs three days ahead."""
    _set_host_clock_off(monkeypatch, HOST_OFF_BY)
    async for core in _core(core_engine, config):
        yield core


@pytest.fixture
async def core_behind(
    core_engine: AsyncEngine, config: PlatformConfig, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[CoreServices]:
    """The core as its process builds it, on a host whose clock runs three days behind."""
    _set_host_clock_off(monkeypatch, -HOST_OFF_BY)
    async for core in _core(core_engine, config):
        yield core


async def _key_held_until(engine: AsyncEngine, account_id: str, locked_until: datetime) -> None:
    """A create request with `BODY` that claimed key "k" ten minutes ago, held until then."""
    claimed = locked_until - timedelta(minutes=10)
    async with engine.begin() as db:
        await db.execute(
            idempotency_keys.insert().values(
                account_id=account_id, key="k", endpoint="CreatePaymentIntent",
                request_digest=digest("CreatePaymentIntent", BODY), request_body=BODY,
                recovery_point=RecoveryPoint.STARTED.value, owner="another-core",
                created_at=claimed, last_run_at=claimed, locked_until=locked_until,
            )
        )  # fmt: skip


async def _create(core: CoreServices, account_id: str) -> object:
    return await core.payments.service.create_payment_intent(
        call(account_id, "k", body=BODY),
        NewPaymentIntent(amount_minor=1000, currency="usd"),
        respond,
    )


async def test_a_core_whose_host_clock_runs_ahead_leaves_a_live_request_s_key_to_it(
    core_engine: AsyncEngine, core_ahead: CoreServices, account_id: str
) -> None:
    # By the host's clock the lease ran out days ago, and the key is over a day old.
    await _key_held_until(
        core_engine, account_id, await _database_now(core_engine) + timedelta(seconds=20)
    )
    with pytest.raises(RemitError) as refused:
        await _create(core_ahead, account_id)
    assert refused.value.code == "idempotency_key_in_use"
    async with core_engine.connect() as db:
        owner = (await db.execute(select(idempotency_keys.c.owner))).scalar_one()
    assert owner == "another-core"


async def test_a_core_whose_host_clock_runs_behind_resumes_an_abandoned_key_by_the_database(
    core_engine: AsyncEngine, core_behind: CoreServices, account_id: str
) -> None:
    # By the host's clock the lease has days to run.
    await _key_held_until(
        core_engine, account_id, await _database_now(core_engine) - timedelta(seconds=1)
    )
    before = await _database_now(core_engine)
    done = await _create(core_behind, account_id)
    after = await _database_now(core_engine)
    assert isinstance(done, Done)
    assert before - READ_ERROR <= done.value.created_at <= after + READ_ERROR
    async with core_engine.connect() as db:
        key = (await db.execute(select(idempotency_keys))).one()
    assert key.recovery_point == RecoveryPoint.FINISHED.value
    assert before - READ_ERROR <= key.last_run_at <= after + READ_ERROR


async def test_the_core_s_clock_stamps_an_authorization_and_its_expiry_by_the_database_s_time(
    core_engine: AsyncEngine, core_ahead: CoreServices, account_id: str
) -> None:
    clock = core_ahead.clock
    payments = PaymentsService(
        core_engine,
        FakeNetwork(),
        FakeMethods(),
        present=payment_intent_message,
        hooks=payment_hooks(clock),
        radar=Radar(challenge_base_url="http://127.0.0.1", clock=clock),
        clock=clock,
    )
    before = await _database_now(core_engine)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    after = await _database_now(core_engine)
    async with core_engine.connect() as db:
        authorized_at = (await db.execute(select(charges.c.authorized_at))).scalar_one()
        run_at = (
            await db.execute(select(jobs.c.run_at).where(jobs.c.kind == EXPIRE_JOB))
        ).scalar_one()
    assert before - READ_ERROR <= held.created_at <= authorized_at <= after + READ_ERROR
    assert run_at == authorized_at + AUTHORIZATION_VALIDITY


async def test_the_core_warns_of_its_host_s_clock_naming_its_own_setting(
    core_ahead: CoreServices, caplog: pytest.LogCaptureFixture
) -> None:
    said = [r.getMessage() for r in caplog.get_records("setup") if r.levelname == "WARNING"]
    assert len(said) == 1
    # Three days, give or take the read's round trip.
    assert re.match(r"the host's clock is 259(199\.9|200\.\d)s ahead of the database's", said[0])
    assert "(REMIT_CORE_MAX_CLOCK_SKEW_S): the core runs on and decides every lease," in said[0]
