"""Explicit wiring of each process: what it constructs, what it serves, what it connects to.

Nothing here is discovered by magic; reading one function tells the whole shape of a process.
"""

import logging
import os
from collections.abc import Callable

from remit.command_exits import EXIT_REFUSED, EXIT_TEMPORARY_FAILURE
from remit.config import ConfigError, PlatformConfig, statement_timeout_s
from remit.core.logging import configure_logging, install_masked_excepthook
from remit.grpcutil.internal_auth import InternalAccess
from remit.payments.crashpoints import check_crash_settings
from remit.readiness import follow_parent
from remit.storage.driver_errors import database_unavailable
from remit.storage.reachability import (
    DatabasesUnavailableError,
    PlatformDatabase,
    acquirer_database,
    check_reachable,
    core_database,
    unavailability_reason,
    vault_database,
)
from remit.storage.schema_check import refuse_unless_migrated

log = logging.getLogger(__name__)

# The database each process cannot do without (the api has none of its own).
_DATABASE_OF: dict[str, Callable[[PlatformConfig], PlatformDatabase]] = {
    "core": core_database,
    "worker": core_database,
    "vault": vault_database,
    "acquirer": acquirer_database,
}


def run_process(role: str, config: PlatformConfig) -> int:
    """Run the process of `role` until it is stopped. It does not start, saying why in one line,
    without a setting it needs, on a port it cannot listen on or on a database not migrated
    as far as its version's migrations (exit 2), or without its database (75, EX_TEMPFAIL: a
    service manager, or `remit serve`, starts it again later; 2 when the server refused the
    URL's user, password or database)."""
    follow_parent()
    configure_logging(role)
    # A bug's traceback, which nothing here catches, is masked as the log is.
    install_masked_excepthook()
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
        # A test's crash switch left in the environment stops it too (`remit.payments.
        # crashpoints`); in a test, it says loudly that it is armed.
        armed = check_crash_settings(os.environ)
        if armed is not None:
            log.warning("remit %s: %s", role, armed)
        # Every process calls or serves the others: without the internal token, it stops
        # here, saying why, rather than serve anyone who reaches its port.
        InternalAccess.of(config)
        # Nor does it report itself ready, only to fail every request, without its database.
        database = _DATABASE_OF.get(role)
        if database is not None:
            check_reachable(database(config))
            # Nor on a schema its migrations have not reached.
            refuse_unless_migrated(database(config))
    except ConfigError as error:
        log.error("remit %s: %s", role, error)
        return EXIT_REFUSED
    except DatabasesUnavailableError as error:
        for line in error.lines:
            log.error("remit %s: %s", role, line)
        return EXIT_REFUSED if error.settings_refused else EXIT_TEMPORARY_FAILURE
    try:
        import uvloop

        uvloop.run(runner(config))
    except KeyboardInterrupt:
        pass
    except ConfigError as error:
        # A setting read as the process sets itself up (`REMIT_VAULT_KEYS`, ...).
        log.error("remit %s: %s", role, error)
        return EXIT_REFUSED
    except Exception as error:
        if not database_unavailable(error):
            raise  # a bug: its traceback is what finds it
        # Its database went away while it set itself up (after the check above).
        log.error("remit %s: stopped, its database became unavailable: %s", role,
                  unavailability_reason(error))  # fmt: skip
        return EXIT_TEMPORARY_FAILURE
    return 0


async def _run_core(config: PlatformConfig) -> None:

    from remit.accounts.grpc import accounts_registration
    from remit.config import core_instance_port
    from remit.core_process import prepare_core
    from remit.grpcutil.errors import ErrorMappingInterceptor
    from remit.grpcutil.server import serve_grpc
    from remit.ledger.grpc import ledger_registration
    from remit.payments.grpc import payments_registration
    from remit.radar.grpc import radar_registration
    from remit.storage.engine import dispose, make_engine
    from remit.webhooks.grpc import webhooks_registration
    from remit.webhooks.stream import EventNotifier
    from remit.worker.runner import libpq_url

    engine = make_engine(
        config.require_database_url(),
        application_name="remit-core",
        statement_timeout_s=statement_timeout_s(),
    )
    # Its services tell the time by the database's clock, never the host's.
    core = await prepare_core(engine, config)
    notifier = EventNotifier(libpq_url(config.require_database_url()))

    async def stop() -> None:
        await notifier.close()
        await core.close()
        await dispose(engine)

    await serve_grpc(
        config.core,
        # One of several core processes also answers on a port of its own, which the REST
        # facade's round-robin channel uses to spread its calls (see PlatformConfig).
        also_on=core_instance_port(),
        services=[
            accounts_registration(core.accounts),
            payments_registration(core.payments.servicer),
            radar_registration(core.payments.radar_servicer),
            webhooks_registration(core.webhooks, notifier),
            ledger_registration(core.ledger),
        ],
        interceptors=[ErrorMappingInterceptor()],
        internal=config,
        on_stop=stop,
    )


async def _run_vault(config: PlatformConfig) -> None:
    from remit.vault.process import run_vault

    await run_vault(config)


async def _run_acquirer(config: PlatformConfig) -> None:
    import asyncio
    import contextlib
    import os

    from remit.acquirer.faults import FaultConfig
    from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
    from remit.acquirer.service import AcquirerService
    from remit.acquirer.settlement_clock import (
        acquirer_clock,
        acquirer_process_engine,
        record_settlement_grace,
        report_grace,
        settlement_grace,
    )
    from remit.grpcutil.server import serve_grpc
    from remit.storage.engine import dispose

    faults = FaultConfig.from_env(os.environ)
    if faults.active:
        log.warning("acquirer fault injection is on: %s", faults)
    engine = acquirer_process_engine(config.require_acquirer_database_url())
    # Every operation's time, and which days are over, by the database's clock.
    clock = await acquirer_clock(engine)
    # Which days are over, for `remit settlement-report` too, run with settings of its own.
    await record_settlement_grace(engine, settlement_grace())
    # The longest recorded, which another acquirer's settings may have made longer than ours.
    grace = await report_grace(engine)
    reading = asyncio.create_task(clock.keep_reading())

    async def stop() -> None:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await dispose(engine)

    await serve_grpc(
        config.acquirer,
        [acquirer_registration(AcquirerService(engine, clock, grace=grace))],
        interceptors=acquirer_interceptors(faults),
        internal=config,
        on_stop=stop,
    )


async def _run_worker(config: PlatformConfig) -> None:
    from remit.worker.runner import run_worker

    await run_worker(config)


async def _run_api(config: PlatformConfig) -> None:
    from remit.rest.server import serve_api

    await serve_api(config)
