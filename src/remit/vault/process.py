"""The vault process: its database, its key material, its destinations, its server."""

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from remit.config import (
    ConfigError,
    PlatformConfig,
    refuse_plaintext_beyond_loopback,
    statement_timeout_s,
    target_hosts,
)
from remit.storage.driver_errors import missing_table
from remit.storage.reachability import PlatformDatabase, unavailability_reason, vault_database
from remit.vault.forwarding import DESTINATIONS_ENV, parse_allowlist


@dataclass(frozen=True)
class VaultSettings:
    """Read by the vault process only; nothing here is handed to any other process."""

    allowlist: Mapping[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str], config: PlatformConfig) -> "VaultSettings":
        raw = environ.get(DESTINATIONS_ENV)
        try:
            allowlist = parse_allowlist(raw) if raw else {"acquirer": config.acquirer.target}
        except ValueError as error:
            raise ConfigError(str(error)) from None
        # The forwarded authorization holds the card number: the same rule as for the
        # platform's own addresses applies to every destination.
        refuse_plaintext_beyond_loopback(
            (host for target in allowlist.values() for host in target_hosts(target)), config
        )
        return cls(allowlist=allowlist)


def not_migrated(database: PlatformDatabase, error: BaseException) -> ConfigError:
    """The refusal to start on `database`, which lacks a table the process reads as it starts
    (`error`): its migrations were not applied, or not all of them. In one line (which
    database, where, never its password) rather than the traceback of the first statement
    that failed."""
    return ConfigError(
        f"{database.described()} is not migrated ({unavailability_reason(error)}): run "
        "`remit migrate` with the same settings, then start it again"
    )


async def run_vault(config: PlatformConfig) -> None:
    from remit.grpcutil.errors import ErrorMappingInterceptor
    from remit.grpcutil.internal_auth import InternalAccess
    from remit.grpcutil.server import serve_grpc
    from remit.storage.engine import dispose, make_engine
    from remit.vault.background import start_background
    from remit.vault.forwarding import grpc_destinations
    from remit.vault.grpc import vault_registration
    from remit.vault.key_check import open_key_store
    from remit.vault.service import VaultService
    from remit.vault.vault_clock import vault_clock

    settings = VaultSettings.from_env(os.environ, config)
    engine = make_engine(
        config.require_vault_database_url(),
        application_name="remit-vault",
        statement_timeout_s=statement_timeout_s(),
    )
    try:
        # Refused (a `ConfigError`) unless they are the keys the database's cards need.
        keys = await open_key_store(os.environ, config.data_dir, engine)
        # Every audit event's time, a CVC's expiry, and whether a forward may still be in
        # flight, by the database's clock, which every vault process shares.
        clock = await vault_clock(engine)
    except BaseException as error:
        await dispose(engine)
        if missing_table(error):
            raise not_migrated(vault_database(config), error) from None
        raise
    service = VaultService(
        engine, keys, grpc_destinations(settings.allowlist, InternalAccess.of(config)), clock
    )
    reading = asyncio.create_task(clock.keep_reading())
    stop = asyncio.Event()
    background = start_background(service, stop)

    async def on_stop() -> None:
        await asyncio.gather(*background, return_exceptions=True)
        await service.close()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await dispose(engine)

    await serve_grpc(
        config.vault,
        [vault_registration(service)],
        interceptors=[ErrorMappingInterceptor()],
        internal=config,
        on_stop=on_stop,
        stop_event=stop,
    )
