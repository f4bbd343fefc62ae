"""Which job kinds and periodic tasks the worker runs; each service contributes its own."""

from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.accounts.service import AccountsService
from remit.config import (
    LEDGER_CHECKPOINT_FILE_ENV,
    LEDGER_CHECKPOINT_KEY_ENV,
    LEDGER_CHECKPOINT_KEY_FILE_ENV,
    ConfigError,
    PlatformConfig,
    ledger_checkpoint_file,
    ledger_checkpoint_interval_s,
    ledger_checkpoint_key,
    network_timeout_s,
    vault_sweep_grace_s,
    vault_sweep_max_deletions,
    vault_sweep_max_unreferenced_share,
    worker_delivery_slots,
    worker_max_clock_skew_s,
)
from remit.core.clock import Clock
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.ledger.checkpoint_task import checkpoint_task
from remit.ledger.jobs import ledger_tasks
from remit.payment_methods import fingerprint_conversion
from remit.payment_methods.fingerprint_conversion import FingerprintConversion
from remit.payment_methods.vault_client import GrpcCardVault
from remit.payment_methods.vault_sweep import UnreferencedCardSweep
from remit.payments.disputing import DECIDE_DISPUTE_JOB, OPEN_DISPUTE_JOB, DisputesService
from remit.payments.related import event_renderer
from remit.payments.service import EXPIRE_JOB
from remit.payments.step_bounds import operation_worst_s
from remit.payments.wiring import build_payments
from remit.radar import expired_challenges
from remit.radar.expired_challenges import ExpiredChallengeSweep
from remit.radar.grpc import completion_response
from remit.storage.database_clock import DatabaseClock
from remit.webhooks.urls import policy_for
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.alone import run_alone
from remit.worker.database_clock import WORKER, reading_task
from remit.worker.housekeeping import housekeeping_tasks
from remit.worker.jobs import Job
from remit.worker.leases import job_lease_for, stop_drain_for
from remit.worker.runner import JobHandler, Periodic, Worker

COMPLETER_INTERVAL_S = 2.0
KEY_REAPER_INTERVAL_S = 3600.0
VAULT_SWEEP_INTERVAL_S = 3600.0
VAULT_SWEEP_TASK = "vault-unreferenced-card-sweep"


async def prepare_worker(
    engine: AsyncEngine, config: PlatformConfig, *, network_engine: AsyncEngine | None = None
) -> Worker:
    """The worker the process runs: every decision it makes by the time (jobs due, leases,
    expiries, funds released, keys and cards deleted) is made on the database's clock, read
    now and every minute after, never on the host's (`remit.storage.database_clock`)."""
    clock = await DatabaseClock.read_from(
        engine, WORKER, max_skew=timedelta(seconds=worker_max_clock_skew_s())
    )
    worker = build_worker(engine, config, clock=clock, network_engine=network_engine)
    worker.periodic.append(reading_task(clock))
    return worker


def build_worker(
    engine: AsyncEngine,
    config: PlatformConfig,
    *,
    clock: Clock,
    network_engine: AsyncEngine | None = None,
) -> Worker:
    """`clock` tells every part the time (`prepare_worker` passes the database's; tests their
    own). `network_engine`: the delivery lane's pool (`Worker.network_engine`), or `engine`'s."""
    handlers: dict[str, JobHandler] = {}
    periodic: list[Periodic] = [*housekeeping_tasks(engine, clock), *ledger_tasks(engine, clock)]
    periodic += ledger_checkpoint_tasks(engine, clock)
    on_stop: list[Callable[[], Awaitable[None]]] = []

    payments = build_payments(engine, config, clock=clock)

    async def expire_authorization(db: AsyncConnection, job: Job) -> None:
        await payments.service.expire_authorization(
            db,
            str(job.payload["account_id"]),
            str(job.payload["payment_intent_id"]),
            # A run before this one (of this job, or of the job it was staged again for) may
            # have sent the release and died before committing. A run that was put back, claimed
            # before it was due, sent nothing.
            sent_before=job.tries > 1 or bool(job.payload.get("sent_before")),
        )

    async def expire_authorization_later(db: AsyncConnection, job: Job) -> None:
        await payments.service.expire_later(
            db,
            str(job.payload["account_id"]),
            str(job.payload["payment_intent_id"]),
            failed_job=job.id,
        )

    disputes = DisputesService(engine, clock)

    async def open_dispute(db: AsyncConnection, job: Job) -> None:
        await disputes.open_expected(
            db, str(job.payload["account_id"]), str(job.payload["charge_id"])
        )

    async def decide_dispute(db: AsyncConnection, job: Job) -> None:
        await disputes.decide_submitted(
            db, str(job.payload["account_id"]), str(job.payload["dispute_id"])
        )

    async def complete_abandoned_requests() -> None:
        await payments.service.complete_abandoned(payments.servicer.resume)

    admin_calls = AccountsService(engine, clock)

    async def reap_idempotency_keys() -> None:
        await payments.service.reap_keys()
        # The admin calls' keys (`remit.accounts.admin_requests`) too, or their table only grows.
        await admin_calls.reap_idempotency_keys()

    challenges = ExpiredChallengeSweep(
        engine, payments.three_d_secure, build=completion_response, clock=clock
    )

    async def sweep_challenges_once() -> None:
        await challenges.run()

    async def end_expired_challenges() -> None:
        # Each challenge is ended under its own locks, so a second copy would be safe, but it
        # would only read the same batch and wait on the same rows: one copy at a time.
        await run_alone(engine, expired_challenges.TASK, sweep_challenges_once)

    handlers[EXPIRE_JOB] = expire_authorization
    handlers[OPEN_DISPUTE_JOB] = open_dispute
    handlers[DECIDE_DISPUTE_JOB] = decide_dispute
    given_up: dict[str, JobHandler] = {EXPIRE_JOB: expire_authorization_later}
    periodic += [
        Periodic("idempotency-completer", COMPLETER_INTERVAL_S, complete_abandoned_requests),
        Periodic("idempotency-reaper", KEY_REAPER_INTERVAL_S, reap_idempotency_keys),
        Periodic(expired_challenges.TASK, expired_challenges.INTERVAL_S, end_expired_challenges),
    ]
    on_stop.append(payments.close)

    # The worker reaches the vault only through its gRPC API, as the core does.
    vault_channel = internal_channel(config.vault.target, InternalAccess.of(config))
    sweep = UnreferencedCardSweep(
        GrpcCardVault(vault_channel, requester="worker"),
        engine,
        grace=timedelta(seconds=vault_sweep_grace_s()),
        max_deletions=vault_sweep_max_deletions(),
        max_unreferenced_share=vault_sweep_max_unreferenced_share(),
        clock=clock,
    )

    async def sweep_once() -> None:
        await sweep.run()

    async def sweep_unreferenced_vault_cards() -> None:
        # It lists the cards that came of age since its last run and moves its mark in the
        # core's database: one worker copy at a time.
        await run_alone(engine, VAULT_SWEEP_TASK, sweep_once)

    periodic.append(
        Periodic(VAULT_SWEEP_TASK, VAULT_SWEEP_INTERVAL_S, sweep_unreferenced_vault_cards)
    )
    # The upgrade past vault migration 0010 converges by itself in the core too: each run asks
    # the vault about the rows not yet known to hold their account's fingerprint.
    conversion = FingerprintConversion(GrpcCardVault(vault_channel, requester="worker"), engine)

    async def convert_once() -> None:
        await conversion.run()

    async def convert_card_fingerprints() -> None:
        # Copies would ask the vault about the same rows: one at a time.
        await run_alone(engine, fingerprint_conversion.TASK, convert_once)

    periodic.append(
        Periodic(
            fingerprint_conversion.TASK,
            fingerprint_conversion.INTERVAL_S,
            convert_card_fingerprints,
        )
    )
    on_stop.append(vault_channel.close)

    # Deliveries use the delivery lane's pool when it has one (`Worker.network_engine`).
    deliveries_engine = network_engine or engine
    webhooks = webhook_worker_parts(
        deliveries_engine,
        policy_for(config),
        clock=clock,
        renderer=event_renderer(deliveries_engine),
    )
    handlers.update(webhooks.handlers)
    periodic += webhooks.periodic
    on_stop.append(webhooks.close)

    # The expiry job's void settles at the network (capture, void and refund take as long);
    # a delivery's POST has its own timeout.
    longest_step_s = max(operation_worst_s(network_timeout_s()), webhooks.longest_step_s)
    return Worker(
        engine=engine,
        handlers=handlers,
        periodic=periodic,
        clock=clock,
        on_stop=on_stop,
        given_up={**given_up, **webhooks.given_up},
        lease=job_lease_for(longest_step_s),
        network_kinds=webhooks.network_kinds,
        network_slots=worker_delivery_slots(),
        preparers=webhooks.preparers,
        network_engine=network_engine,
        # A delivery in flight at the stop is let finish its POST and record it: cut, it would
        # hold its endpoint's slot until its lease ran out, and then be sent again to a
        # receiver that may well have had it.
        stop_drain_s=stop_drain_for(webhooks.longest_step_s),
    )


def ledger_checkpoint_tasks(engine: AsyncEngine, clock: Clock) -> list[Periodic]:
    """The ledger's checkpoints (`remit.ledger.anchoring`) when a checkpoint file is set; a
    file without a key to authenticate its checkpoints is refused as the worker starts."""
    path = ledger_checkpoint_file()
    if path is None:
        return []
    key = ledger_checkpoint_key()
    if key is None:
        raise ConfigError(
            f"{LEDGER_CHECKPOINT_FILE_ENV} is set but neither {LEDGER_CHECKPOINT_KEY_ENV} nor "
            f"{LEDGER_CHECKPOINT_KEY_FILE_ENV}: checkpoints need the key that authenticates them"
        )
    return [checkpoint_task(engine, clock, path, key, ledger_checkpoint_interval_s())]
