"""Which job kinds and periodic tasks the worker runs; each service contributes its own."""

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import PlatformConfig
from remit.ledger.jobs import ledger_tasks
from remit.worker.housekeeping import housekeeping_tasks
from remit.worker.runner import JobHandler, Periodic, Worker


def build_worker(engine: AsyncEngine, config: PlatformConfig) -> Worker:
    handlers: dict[str, JobHandler] = {}
    periodic: list[Periodic] = [*housekeeping_tasks(engine), *ledger_tasks(engine)]
    return Worker(engine=engine, handlers=handlers, periodic=periodic)
