"""What the worker process is built to run."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.admin_requests import KEY_RETENTION as ADMIN_KEY_RETENTION
from remit.accounts.service import AccountsService
from remit.accounts.tables import admin_idempotency_keys
from remit.config import from_env
from remit.core.clock import FixedClock
from remit.payment_methods import fingerprint_conversion
from remit.payments.domain import Status
from remit.payments.idempotency import find
from remit.payments.service import EXPIRE_JOB, EXPIRY_RETRY_AFTER, PaymentsService
from remit.payments.step_bounds import operation_worst_s
from remit.radar import expired_challenges
from remit.radar.authentication import completion_key
from remit.radar.challenges import ChallengeStatus
from remit.storage.database_clock import DatabaseClock
from remit.storage.engine import dispose, make_engine
from remit.supervisor import stop_grace_s
from remit.webhooks.domain import DELIVERY_TIMEOUT_S
from remit.webhooks.outbox import DELIVER_JOB
from remit.worker.alone import run_alone
from remit.worker.database_clock import WORKER
from remit.worker.jobs import Job
from remit.worker.leases import HANDLER_ALLOWANCE_S
from remit.worker.registry import VAULT_SWEEP_INTERVAL_S, build_worker
from remit.worker.runner import Worker
from remit.worker.tables import jobs
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.radar.test_expired_challenges import (
    RETURN_URL,
    Parts,
    stored_challenge,
    waiting_for_its_challenge,
)
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def built_worker(
    databases: WorkerDatabases, data_dir: Path, engine: AsyncEngine | None = None
) -> AsyncIterator[Worker]:
    """The worker `remit worker` builds, on `engine` or else on an engine of its own, and on
    the database's clock; on leaving, its parts are closed (and its own engine disposed)."""
    config = from_env(
        {
            "DATABASE_URL": databases.core_url,
            "REMIT_DATA_DIR": str(data_dir),
            "REMIT_INTERNAL_TOKEN": "registry-test-token",
        }
    )
    on = make_engine(databases.core_url) if engine is None else engine
    try:
        worker = build_worker(on, config, clock=await DatabaseClock.read_from(on, WORKER))
        try:
            yield worker
        finally:
            for close in worker.on_stop:
                await close()
    finally:
        if engine is None:
            await dispose(on)


async def test_the_worker_sweeps_unreferenced_vault_cards_periodically(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    async with built_worker(databases, tmp_path) as worker:
        intervals = {task.name: task.interval_s for task in worker.periodic}
        assert intervals["vault-unreferenced-card-sweep"] == VAULT_SWEEP_INTERVAL_S
        assert len(intervals) == len(worker.periodic)  # names are unique


async def test_the_worker_converts_the_core_s_card_fingerprints_periodically(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    async with built_worker(databases, tmp_path) as worker:
        intervals = {task.name: task.interval_s for task in worker.periodic}
        assert intervals[fingerprint_conversion.TASK] == fingerprint_conversion.INTERVAL_S


async def test_deliveries_run_in_slots_of_their_own_apart_from_the_payment_jobs(
    databases: WorkerDatabases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An endpoint that hangs holds delivery slots only: the expiries and every other payment
    job claim in the general slots, which deliveries never take."""
    monkeypatch.setenv("REMIT_WORKER_DELIVERY_SLOTS", "100")
    async with built_worker(databases, tmp_path) as worker:
        general, deliveries = worker.lanes()
        assert (deliveries.kinds, deliveries.slots, deliveries.fair) == ([DELIVER_JOB], 100, True)
        assert EXPIRE_JOB in general.kinds
        assert DELIVER_JOB not in general.kinds
        assert (general.slots, general.fair) == (8, False)
        # Its POST made with no connection held, before the job's transaction.
        assert set(worker.preparers) == {DELIVER_JOB}


@pytest.mark.parametrize("network_timeout_s", ["10", "120"])
async def test_the_worker_s_job_lease_outlasts_an_expiry_s_void_at_the_network_timeout(
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    network_timeout_s: str,
) -> None:
    """An expiry job's void settles at the network in up to 7 network timeouts (71.2 s at the
    default 10 s): its claim must hold, and its run stop, no sooner."""
    monkeypatch.setenv("REMIT_NETWORK_TIMEOUT_S", network_timeout_s)
    async with built_worker(databases, tmp_path) as worker:
        void_s = operation_worst_s(float(network_timeout_s))
        assert worker.lease.run_budget_s > void_s
        assert worker.lease.lease_s > worker.lease.run_budget_s


async def test_the_worker_reaps_the_admin_calls_idempotency_keys_with_the_payments_ones(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> None:
    long_ago = FixedClock(datetime.now(UTC) - ADMIN_KEY_RETENTION - timedelta(hours=1))
    await AccountsService(core_engine, long_ago).create_account_once("a-run-long-ago")
    await AccountsService(core_engine).create_account_once("a-run-just-now")
    async with built_worker(databases, tmp_path, core_engine) as worker:
        await {task.name: task for task in worker.periodic}["idempotency-reaper"].run()
    async with core_engine.connect() as db:
        left = (await db.execute(select(admin_idempotency_keys.c.idempotency_key))).scalars()
        assert list(left) == ["a-run-just-now"]


async def test_an_expiry_that_failed_for_good_is_staged_again_and_reported(
    core_engine: AsyncEngine,
    databases: WorkerDatabases,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Left failed, the authorization would stay held at the network and the intent
    requires_capture for ever."""
    payload = {"account_id": "acct_1", "payment_intent_id": "pi_1"}
    failed = Job(id=41, kind=EXPIRE_JOB, payload=payload, account_id="acct_1", attempts=25,
                 max_attempts=25)  # fmt: skip
    async with built_worker(databases, tmp_path, core_engine) as worker:
        async with core_engine.begin() as db:
            before = (await db.execute(select(func.now()))).scalar_one()
            await worker.given_up[EXPIRE_JOB](db, failed)
        async with core_engine.connect() as db:
            staged = (
                await db.execute(
                    select(jobs.c.payload, jobs.c.status, jobs.c.run_at).where(
                        jobs.c.kind == EXPIRE_JOB
                    )
                )
            ).all()
    [again] = staged
    # The failed runs may have sent the release: the staged job looks it up before sending.
    assert (again.payload, again.status) == ({**payload, "sent_before": True}, "pending")
    assert again.run_at >= before + EXPIRY_RETRY_AFTER
    assert [r.levelname for r in caplog.records if "pi_1" in r.getMessage()] == ["ERROR"]


@pytest.mark.parametrize(
    ("attempts", "put_backs", "sent_before"), [(1, 0, False), (5, 4, False), (6, 4, True)]
)
async def test_the_expiry_reads_a_run_put_back_as_sending_nothing(
    core_engine: AsyncEngine,
    databases: WorkerDatabases,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attempts: int,
    put_backs: int,
    sent_before: bool,
) -> None:
    """A run put back (claimed before the authorization expired) voided nothing: only a real
    run before this one may have sent the release."""
    seen: list[bool] = []

    async def expire_authorization(
        self: PaymentsService, db: object, account_id: str, intent_id: str, *, sent_before: bool
    ) -> None:
        seen.append(sent_before)

    monkeypatch.setattr(PaymentsService, "expire_authorization", expire_authorization)
    payload = {"account_id": "acct_1", "payment_intent_id": "pi_1"}
    job = Job(id=41, kind=EXPIRE_JOB, payload=payload, account_id="acct_1", attempts=attempts,
              max_attempts=25 + put_backs, put_backs=put_backs)  # fmt: skip
    async with built_worker(databases, tmp_path, core_engine) as worker, core_engine.begin() as db:
        await worker.handlers[EXPIRE_JOB](db, job)
    assert seen == [sent_before]


async def test_the_worker_ends_expired_challenges_periodically_one_copy_at_a_time(
    core_engine: AsyncEngine, databases: WorkerDatabases, tmp_path: Path
) -> None:
    """Its task ends a challenge whose hour ran out, through the payments the worker builds,
    and skips its turn while another copy runs it."""
    # Paid two hours ago, on the worker's own clock.
    made = Parts(core_engine, FixedClock(datetime.now(UTC) - timedelta(hours=2)))
    account_id = (await AccountsService(core_engine).create_account()).account.id
    intent, challenge_id = await waiting_for_its_challenge(made, account_id, "pay")
    other_copy_inside, other_copy_done = asyncio.Event(), asyncio.Event()

    async def running_elsewhere() -> None:
        other_copy_inside.set()
        await other_copy_done.wait()

    async with built_worker(databases, tmp_path, core_engine) as worker:
        tasks = {task.name: task for task in worker.periodic}
        sweep = tasks[expired_challenges.TASK]
        assert sweep.interval_s == expired_challenges.INTERVAL_S
        other_copy = asyncio.create_task(
            run_alone(core_engine, expired_challenges.TASK, running_elsewhere)
        )
        await other_copy_inside.wait()
        await sweep.run()
        assert (await stored_challenge(made, account_id, challenge_id)).status is (
            ChallengeStatus.PENDING
        )
        other_copy_done.set()
        await other_copy
        await sweep.run()
    assert (await stored_challenge(made, account_id, challenge_id)).status is (
        ChallengeStatus.EXPIRED
    )
    after = await made.payments.get_payment_intent(account_id, intent.id)
    assert after.status is Status.REQUIRES_PAYMENT_METHOD
    # The answer a press now replays is the one the page renders, sending the cardholder back.
    async with core_engine.connect() as db:
        key = await find(db, account_id, completion_key(challenge_id))
    assert key is not None
    assert key.response_body is not None
    answer = pb.CompleteThreeDSecureChallengeResponse.FromString(key.response_body)
    assert answer.redirect_url.startswith(RETURN_URL)


async def test_a_stopping_worker_lets_a_delivery_in_flight_finish_its_post(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    """A POST may take its whole timeout: the worker's drain on a stop outlasts it, with the
    delivery's database work around it, so that a delivery in flight is recorded once rather
    than cut and sent again after its lease (tests/integration/webhooks/test_stopping_worker.py);
    and the supervisor waits for that drain before it kills the worker."""
    async with built_worker(databases, tmp_path) as worker:
        assert worker.stop_drain_s >= DELIVERY_TIMEOUT_S + HANDLER_ALLOWANCE_S
        assert stop_grace_s() > worker.stop_drain_s
