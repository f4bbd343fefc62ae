"""Which job kinds and periodic tasks the worker runs; each service contributes its own."""

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.config import PlatformConfig
from remit.payments.service import EXPIRE_JOB
from remit.payments.wiring import build_payments
from remit.worker.housekeeping import housekeeping_tasks
from remit.worker.jobs import Job
from remit.worker.runner import JobHandler, Periodic, Worker

COMPLETER_INTERVAL_S = 2.0
KEY_REAPER_INTERVAL_S = 3600.0


def build_worker(engine: AsyncEngine, config: PlatformConfig) -> Worker:
    payments = build_payments(engine, config)

    async def expire_authorization(db: AsyncConnection, job: Job) -> None:
        await payments.service.expire_authorization(
            db, str(job.payload["account_id"]), str(job.payload["payment_intent_id"])
        )

    async def complete_abandoned_requests() -> None:
        await payments.service.complete_abandoned(payments.servicer.resume)

    async def reap_idempotency_keys() -> None:
        await payments.service.reap_keys()

    handlers: dict[str, JobHandler] = {EXPIRE_JOB: expire_authorization}
    periodic: list[Periodic] = [
        *housekeeping_tasks(engine),
        Periodic("idempotency-completer", COMPLETER_INTERVAL_S, complete_abandoned_requests),
        Periodic("idempotency-reaper", KEY_REAPER_INTERVAL_S, reap_idempotency_keys),
    ]
    return Worker(engine=engine, handlers=handlers, periodic=periodic, on_close=payments.close)
