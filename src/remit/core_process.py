"""The core process's services, built on one clock: the database's.

Everything the core decides or stamps by the time is read by another process or another core
copy: a request's lease (`idempotency_keys.locked_until`, which a retry on another copy or the
worker's completer compares with its own time), when a charge was authorized (the worker
releases it 7 days later), a job's due time, the rows' `created` that every list and response
shows. So every service here tells the time by the database's clock, read when the core starts
and every minute after (`remit.storage.database_clock`), never by its host's.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.config import PlatformConfig, core_max_clock_skew_s
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.ledger.service import LedgerService
from remit.payments.related import event_renderer
from remit.payments.wiring import PaymentsWiring, build_payments
from remit.storage.database_clock import ClockUser, DatabaseClock
from remit.webhooks.service import WebhooksService
from remit.webhooks.urls import policy_for
from remit_api.acquirer.v1 import acquirer_pb2_grpc

CORE: Final = ClockUser(
    process="core",
    skew_setting="REMIT_CORE_MAX_CLOCK_SKEW_S",
    decides="every lease, authorization time, due time and creation time",
)


@dataclass
class CoreServices:
    clock: DatabaseClock
    accounts: AccountsService
    payments: PaymentsWiring
    webhooks: WebhooksService
    ledger: LedgerService
    close: Callable[[], Awaitable[None]]


async def prepare_core(engine: AsyncEngine, config: PlatformConfig) -> CoreServices:
    """The core's services, telling the database's time; `close` stops reading it and closes
    their channels."""
    clock = await DatabaseClock.read_from(
        engine, CORE, max_skew=timedelta(seconds=core_max_clock_skew_s())
    )
    payments = build_payments(engine, config, clock=clock)
    webhooks = WebhooksService(
        engine, policy=policy_for(config), renderer=event_renderer(engine), clock=clock
    )
    # Reconciliation reads the acquirer's settlement reports.
    acquirer_channel = internal_channel(config.acquirer.target, InternalAccess.of(config))
    ledger = LedgerService(
        engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel)
    )
    reading = asyncio.create_task(clock.keep_reading())

    async def close() -> None:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await webhooks.close()
        await payments.close()
        await acquirer_channel.close()

    return CoreServices(clock, AccountsService(engine, clock), payments, webhooks, ledger, close)
