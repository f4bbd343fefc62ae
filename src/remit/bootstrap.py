"""Explicit wiring of each process: what it constructs, what it serves, what it connects to.

Nothing here is discovered by magic; reading one function tells the whole shape of a process.
"""

import logging

from remit.config import ConfigError, PlatformConfig
from remit.core.logging import configure_logging
from remit.grpcutil.internal_auth import InternalAccess
from remit.readiness import follow_parent

log = logging.getLogger(__name__)


def run_process(role: str, config: PlatformConfig) -> int:
    follow_parent()
    configure_logging(role)
    runners = {
        "core": _run_core,
        "vault": _run_vault,
        "acquirer": _run_acquirer,
        "worker": _run_worker,
        "api": _run_api,
    }
    runner = runners[role]
    # Its calls show its own role's credential, and may make only what that role needs.
    config = config.acting_as(role)
    try:
        # Every process calls or serves the others: without the internal token, it stops
        # here, saying why, rather than serve anyone who reaches its port.
        InternalAccess.of(config)
    except ConfigError as error:
        log.error("remit %s: %s", role, error)
        return 2
    try:
        import uvloop

        uvloop.run(runner(config))
    except KeyboardInterrupt:
        pass
    return 0


async def _run_core(config: PlatformConfig) -> None:

    from remit.accounts.grpc import accounts_registration
    from remit.accounts.service import AccountsService
    from remit.config import core_instance_port
    from remit.grpcutil.errors import ErrorMappingInterceptor
    from remit.grpcutil.internal_auth import InternalAccess, internal_channel
    from remit.grpcutil.server import serve_grpc
    from remit.ledger.grpc import ledger_registration
    from remit.ledger.service import LedgerService
    from remit.payments.grpc import payments_registration
    from remit.payments.related import event_renderer
    from remit.payments.wiring import build_payments
    from remit.radar.grpc import radar_registration
    from remit.storage.engine import dispose, make_engine
    from remit.webhooks.grpc import webhooks_registration
    from remit.webhooks.service import WebhooksService
    from remit.webhooks.stream import EventNotifier
    from remit.webhooks.urls import policy_for
    from remit.worker.runner import libpq_url
    from remit_api.acquirer.v1 import acquirer_pb2_grpc

    engine = make_engine(config.require_database_url(), application_name="remit-core")
    accounts = AccountsService(engine)
    payments = build_payments(engine, config)
    webhooks = WebhooksService(engine, policy=policy_for(config), renderer=event_renderer(engine))
    notifier = EventNotifier(libpq_url(config.require_database_url()))
    # Reconciliation reads the acquirer's settlement reports.
    acquirer_channel = internal_channel(config.acquirer.target, InternalAccess.of(config))
    ledger = LedgerService(engine, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(acquirer_channel))

    async def stop() -> None:
        await notifier.close()
        await webhooks.close()
        await payments.close()
        await acquirer_channel.close()
        await dispose(engine)

    await serve_grpc(
        config.core,
        # One of several core processes also answers on a port of its own, which the REST
        # facade's round-robin channel uses to spread its calls (see PlatformConfig).
        also_on=core_instance_port(),
        services=[
            accounts_registration(accounts),
            payments_registration(payments.servicer),
            radar_registration(payments.radar_servicer),
            webhooks_registration(webhooks, notifier),
            ledger_registration(ledger),
        ],
        interceptors=[ErrorMappingInterceptor()],
        internal=config,
        on_stop=stop,
    )


async def _run_vault(config: PlatformConfig) -> None:
    from remit.vault.process import run_vault

    await run_vault(config)


async def _run_acquirer(config: PlatformConfig) -> None:
    import os

    from remit.acquirer.faults import FaultConfig
    from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
    from remit.acquirer.service import AcquirerService
    from remit.grpcutil.server import serve_grpc
    from remit.storage.engine import dispose, make_engine

    faults = FaultConfig.from_env(os.environ)
    if faults.active:
        log.warning("acquirer fault injection is on: %s", faults)
    engine = make_engine(config.require_acquirer_database_url(), application_name="remit-acq")
    await serve_grpc(
        config.acquirer,
        [acquirer_registration(AcquirerService(engine))],
        interceptors=acquirer_interceptors(faults),
        internal=config,
        on_stop=lambda: dispose(engine),
    )


async def _run_worker(config: PlatformConfig) -> None:
    from remit.worker.runner import run_worker

    await run_worker(config)


async def _run_api(config: PlatformConfig) -> None:
    from remit.rest.server import serve_api

    await serve_api(config)
