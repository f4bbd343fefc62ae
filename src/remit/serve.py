"""`remit serve`: databases, migrations, the default test account, then every process.

Its exit code: 0 stopped as asked; 1 a process did not come up (an embedded PostgreSQL that
refused to start among them), or kept dying, or `remit serve` itself failed in a way nothing
here names (a bug: one line still, its traceback logged at DEBUG); 2 a setting is missing or
wrong (a database refused the URL's user, password or database among them, two database
settings naming one database, a port one of its servers cannot listen on: another program
holds it, which an operator must mend, so starting again unchanged fails the same way; a
default account file that cannot be read), or a migration stopped or failed, which it would
again started unchanged; 75 (EX_TEMPFAIL) a database was out of reach, an embedded PostgreSQL
was still starting when pgserver stopped waiting, or another transaction held a lock a
migration needs: the same start may succeed later; 130 stopped a second time while migrating
(`remit.supervisor.Supervisor.preparing`). Each failure to start is one line, naming what
failed (the database and the processes that need it, the data directory, the port and its
setting, the file), never a password.

A database a newer remit version migrated (at a schema revision this version does not know: an
upgrade rolled back) is left as it is, with a warning, and the platform starts on it: a
process of the earlier version runs on the newer schema (`remit.storage.schema_check`).
"""

import asyncio
import logging
import os
import socket
from dataclasses import replace

from remit.accounts.service import AccountsService
from remit.command_exits import EXIT_INTERRUPTED, EXIT_REFUSED, EXIT_TEMPORARY_FAILURE
from remit.config import DEFAULT_ACCOUNT_ENV, ConfigError, PlatformConfig
from remit.core.errors import RemitError
from remit.databases import (
    MigrationFailedError,
    ResolvedDatabases,
    migrate_all,
    resolve_databases,
)
from remit.grpcutil.internal_auth import token_in
from remit.hosts import free_port, listen_problem
from remit.payments.crashpoints import check_crash_settings
from remit.storage.driver_errors import database_unavailable
from remit.storage.embedded import EmbeddedDatabaseError
from remit.storage.engine import dispose, make_engine
from remit.storage.migration_locks import MigrationLockTimeoutError
from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.reachability import DatabasesUnavailableError, core_database, failure_of
from remit.supervisor import (
    StartupError,
    Supervisor,
    install_stop_handlers,
    read_default_account,
    write_default_account,
)

log = logging.getLogger(__name__)

# A process did not come up (the embedded PostgreSQL among them), or kept dying.
EXIT_PROCESS_FAILED = 1


def wants_default_account(config: PlatformConfig) -> bool:
    """Whether this start makes the test account (on its first start) and prints its keys:
    as the operator says (REMIT_DEFAULT_ACCOUNT, `--default-account`), else only on an
    embedded core database (`make run`'s). That one lives under the data directory beside the
    file the keys are kept in, and on a developer's machine. A core database of DATABASE_URL
    is a server's: an account with a working key made at every start on an ephemeral data
    directory (a container's), its secret key printed in full to logs many can read, would be
    a key nobody asked for, left working."""
    if config.default_account is not None:
        return config.default_account
    return config.database_url is None


def _ensure_default_account(config: PlatformConfig) -> dict[str, str]:
    """`_default_account`, a database lost on the way said as a failure of that database."""
    try:
        return asyncio.run(_default_account(config))
    except Exception as error:
        if not database_unavailable(error):
            raise
        raise DatabasesUnavailableError([failure_of(core_database(config), error)]) from error


async def _default_account(config: PlatformConfig) -> dict[str, str]:
    """Create the default test account on first start; afterwards reuse the saved keys, those
    that still work (one rolled or revoked since is left out)."""
    engine = make_engine(config.require_database_url(), pool_size=1)
    try:
        service = AccountsService(engine)
        saved = read_default_account(config.data_dir)
        if saved is not None:
            try:
                await service.get_account(saved["id"])
            except RemitError:
                log.warning("saved default account %s is not in the database", saved["id"])
            else:
                return await _working_keys(service, saved)
        created = await service.create_account()
    finally:
        await dispose(engine)
    account = {
        "id": created.account.id,
        "secret_key": created.secret_key,
        "publishable_key": created.publishable_key,
    }
    write_default_account(config.data_dir, account)
    return account


_SAVED_KEYS = ("secret_key", "publishable_key")


async def _working_keys(service: AccountsService, saved: dict[str, str]) -> dict[str, str]:
    """`saved` without the keys that no longer work for its account, so that none is shown."""
    kept = {name: value for name, value in saved.items() if name not in _SAVED_KEYS}
    for name in _SAVED_KEYS:
        key = saved.get(name)
        if key is None:
            continue
        try:
            principal = await service.authenticate(key)
        except RemitError:
            continue
        if principal.account_id == saved["id"]:
            kept[name] = key
    return kept


def _banner(config: PlatformConfig, account: dict[str, str] | None) -> str:
    return "\n".join(
        [
            "",
            "remit is running",
            f"  REST API        http://{config.api.target}/v1",
            f"  core gRPC       {config.core.target}"
            + (f" ({config.core_processes} processes)" if config.core_processes > 1 else ""),
            f"  vault gRPC      {config.vault.target}",
            f"  acquirer gRPC   {config.acquirer.target}",
            "",
            *_account_lines(account),
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def _account_lines(account: dict[str, str] | None) -> list[str]:
    if account is None:
        return [
            "no test account made: `remit accounts create` makes an account and prints its",
            f"keys (or start with --default-account, {DEFAULT_ACCOUNT_ENV}=1)",
        ]
    account_id = account["id"]
    lines = ["test account", f"  account         {account_id}"]
    for name, label, flag in (
        ("secret_key", "secret key     ", ""),
        ("publishable_key", "publishable key", " --publishable"),
    ):
        key = account.get(name)
        if key is not None:
            lines.append(f"  {label} {key}")
        else:
            lines.append(
                f"  {label} the saved one no longer works: "
                f"`remit accounts keys create {account_id}{flag}` makes another"
            )
    return lines


def with_core_instance_ports(config: PlatformConfig) -> PlatformConfig:
    """Give each core process a port of its own when there are several (see PlatformConfig):
    one free at every address of the core host. A `ConfigError` when the host does not resolve
    or no port can be had there (it is not this machine's)."""
    if config.core_processes == 1 or len(config.core_instance_ports) == config.core_processes:
        return config
    host = config.core.host
    try:
        ports = tuple(free_port(host) for _ in range(config.core_processes))
    except socket.gaierror as error:
        raise ConfigError(f"REMIT_CORE_HOST {host!r} does not resolve: {error}") from None
    except OSError as error:
        raise ConfigError(
            f"the core copies cannot listen on REMIT_CORE_HOST {host!r}: {error.strerror or error}"
        ) from None
    return replace(config, core_instance_ports=ports)


def serve(config: PlatformConfig) -> int:
    # Its processes would refuse to start one by one (`remit.payments.crashpoints`): say so
    # once, before anything starts (a `ConfigError`).
    check_crash_settings(os.environ)
    config = with_core_instance_ports(config)
    config = _with_data_dir(config)
    refuse_ports_in_use(config)
    # The stop handlers go in before any embedded PostgreSQL starts: a SIGTERM handled by
    # Python's default would end this process at once and leave a cluster it had started
    # running, with nobody to stop it (a SIGINT would leave one it was starting).
    supervisor = Supervisor(config)
    install_stop_handlers(supervisor)
    resolved = ResolvedDatabases(config)
    # Decided before the embedded databases are given URLs.
    default_account = wants_default_account(config)
    try:
        with supervisor.preparing():
            try:
                resolved = resolve_databases(config, stopping=lambda: supervisor.stopping)
            except EmbeddedDatabaseError as error:
                if supervisor.stopping:
                    # A Ctrl-C reaches initdb and pg_ctl too, which then fail: that is the
                    # stop asked for, not a failure to start.
                    return 0
                log.error("could not start: %s", error)
                return EXIT_TEMPORARY_FAILURE if error.temporary else EXIT_PROCESS_FAILED
            supervisor.use_config(resolved.config)
            if supervisor.stopping:
                return 0  # asked to stop while the databases started: nothing else begun
            for left_alone in migrate_all(resolved.config):
                log.warning("%s", left_alone)
            account = _ensure_default_account(resolved.config) if default_account else None
        supervisor.start()
        if not supervisor.stopping:  # (asked to stop meanwhile: it is not running)
            print(_banner(resolved.config, account), flush=True)
        return supervisor.wait()
    except KeyboardInterrupt:
        # A second stop request while migrating (`Supervisor.preparing`): each migration is
        # a transaction of its own, and an index build cut short is built again, so the next
        # start resumes them.
        log.warning("stopped before the migrations finished")
        return EXIT_INTERRUPTED
    except DatabasesUnavailableError as error:
        for line in error.lines:
            log.error("could not start: %s", line)
        return EXIT_REFUSED if error.settings_refused else EXIT_TEMPORARY_FAILURE
    except MigrationLockTimeoutError as error:
        log.error("could not start: %s", error)
        return EXIT_TEMPORARY_FAILURE
    except MigrationStoppedError as error:
        log.error("could not start: %s", error)
        return EXIT_REFUSED
    except MigrationFailedError as error:
        # Started again unchanged, the same migration fails the same way.
        log.debug("the migrations failed", exc_info=error)
        log.error("could not start: %s", error)
        return EXIT_REFUSED
    except StartupError as error:
        log.error("could not start: %s", error)
        # A process that refused its settings said which in its own line.
        return EXIT_REFUSED if error.refused else EXIT_PROCESS_FAILED
    finally:
        supervisor.stop()
        resolved.stop_embedded()
        log.info("stopped")


def _with_data_dir(config: PlatformConfig) -> PlatformConfig:
    """Make the data directory, and `config` with the internal token kept there (when none is
    set); a `ConfigError` when the directory cannot be used."""
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        if config.internal_token is None:
            # Every process of the platform shows this on its gRPC calls; commands run later
            # against the same data directory find it there.
            config = replace(config, internal_token=token_in(config.data_dir))
    except OSError as error:
        raise ConfigError(
            f"the data directory {config.data_dir} (REMIT_DATA_DIR, --data-dir) cannot be "
            f"used: {error.strerror or error}"
        ) from None
    return config


def refuse_ports_in_use(config: PlatformConfig) -> None:
    """A `ConfigError` naming the first port of the platform's a server could not listen on
    (another program holds it, or the host is not this machine's), before anything starts:
    else that process would stop at start, the rest after it."""
    listeners = [("api", config.api), ("core", config.core), ("vault", config.vault),
                 ("acquirer", config.acquirer)]  # fmt: skip
    for role, endpoint in listeners:
        setting = f"REMIT_{role.upper()}_HOST, REMIT_{role.upper()}_PORT"
        try:
            problem = listen_problem(endpoint.host, endpoint.port)
        except socket.gaierror as error:
            problem = f"{endpoint.host} does not resolve ({error.strerror or error})"
        if problem is not None:
            raise ConfigError(
                f"the {role} cannot listen on {endpoint.target} ({setting}): {problem}"
            )
