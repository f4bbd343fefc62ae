"""Which job kinds and periodic tasks the worker runs; each service contributes its own."""

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.config import PlatformConfig
from remit.webhooks.urls import policy_for
from remit.webhooks.worker import webhook_worker_parts
from remit.worker.housekeeping import housekeeping_tasks
from remit.worker.runner import JobHandler, Periodic, Worker


def build_worker(engine: AsyncEngine, config: PlatformConfig) -> Worker:
    handlers: dict[str, JobHandler] = {}
    periodic: list[Periodic] = [*housekeeping_tasks(engine)]
    on_stop: list[Callable[[], Awaitable[None]]] = []

    webhooks = webhook_worker_parts(engine, policy_for(config))
    handlers.update(webhooks.handlers)
    periodic += webhooks.periodic
    on_stop.append(webhooks.close)

    return Worker(engine=engine, handlers=handlers, periodic=periodic, on_stop=on_stop)
