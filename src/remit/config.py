"""Where every process listens and which databases it uses, from flags and environment.

`remit serve` resolves one `PlatformConfig` and hands it to each child process through
environment variables, so a process started alone (`remit core`, `remit api`, ...) reads the
same settings the same way.
"""

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

from remit.core.secrets import Secret
from remit.grpcutil.internal_roles import (
    ACQUIRER,
    API,
    CALLER_ONLY_ROLES,
    CORE,
    VAULT,
    WORKER,
    role_credential,
)
from remit.hosts import bracketed, host_problem, ip_literal, resolved_addresses, unbracketed

# The internal token (`remit.grpcutil.internal_auth`): its variable, and its file in the data
# directory.
TOKEN_ENV: Final = "REMIT_INTERNAL_TOKEN"  # noqa: S105 (names, not secrets)
TOKEN_FILE: Final = "internal-token"  # noqa: S105
# The credential of one role (`remit.grpcutil.internal_roles`), for a process given that in
# place of the platform token: what `remit serve` hands the REST facade and the worker.
CREDENTIAL_ENV: Final = "REMIT_INTERNAL_CREDENTIAL"
# The prefix of the mutual-TLS settings between the processes (`..._CERT`, `_KEY`, `_CA`,
# `_SERVER_NAME`).
TLS_ENV: Final = "REMIT_INTERNAL_TLS"
# Set to `allow` to let the processes speak plaintext gRPC beyond this machine's loopback
# interface (`refuse_plaintext_beyond_loopback`).
PLAINTEXT_ENV: Final = "REMIT_INTERNAL_PLAINTEXT"
# Set to `off` to run a gRPC service, or call one, without the internal token: for development
# only, as the service then answers anyone who reaches its port, for any account.
INTERNAL_AUTH_ENV: Final = "REMIT_INTERNAL_AUTH"
# `1` makes `remit serve` create a test account and print its keys whatever its databases,
# `0` never; unset, only on an embedded core database (`remit.serve.wants_default_account`).
DEFAULT_ACCOUNT_ENV: Final = "REMIT_DEFAULT_ACCOUNT"


@dataclass(frozen=True)
class Endpoint:
    # Without brackets (`::1`, given as `::1` or `[::1]`): what a socket binds (`remit.hosts`).
    host: str
    port: int

    def __post_init__(self) -> None:
        if ip_literal(self.host) is not None:
            object.__setattr__(self, "host", unbracketed(self.host))

    @property
    def target(self) -> str:
        """`host:port`, an IPv6 address in brackets (`[::1]:7421`): what gRPC dials and
        binds, and what a URL holds."""
        return f"{bracketed(self.host)}:{self.port}"


@dataclass(frozen=True)
class InternalTls:
    """Mutual TLS between remit's processes (`remit.grpcutil.internal_auth`): each presents
    `cert` (with `key`) and accepts only peers whose certificates `ca` signed. `server_name`,
    when set, is the name the servers' certificate carries if it is not the host dialled."""

    cert: Path
    key: Path
    ca: Path
    server_name: str | None = None


@dataclass(frozen=True)
class PlatformConfig:
    data_dir: Path
    api: Endpoint
    core: Endpoint
    vault: Endpoint
    acquirer: Endpoint
    database_url: str | None
    vault_database_url: str | None
    acquirer_database_url: str | None
    api_workers: int
    # REMIT_DEVELOPMENT=1: webhook endpoints may reach internal addresses (loopback, private
    # networks, cloud metadata). Off unless set: on a server, a webhook URL must not be a way
    # into the network remit runs in. `make run`, a platform on a developer's machine, sets it.
    development: bool
    # Hosts or networks webhook endpoints may reach outside development mode even though they
    # are internal (REMIT_WEBHOOK_ALLOWED_HOSTS, comma-separated).
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Where buyers reach the REST facade (REMIT_PUBLIC_URL), for links remit hands out such as
    # the 3-D Secure page; the facade's own address when unset.
    public_url: str | None = None
    # How many core processes `remit serve` runs (REMIT_CORE_PROCESSES). Each listens on the
    # shared core port and on a port of its own (REMIT_CORE_INSTANCE_PORTS, chosen by `remit
    # serve`), so that the REST facade can spread its calls over all of them.
    core_processes: int = 1
    core_instance_ports: tuple[int, ...] = ()
    # The shared secret remit's processes show each other on every gRPC call
    # (`remit.grpcutil.internal_auth`): REMIT_INTERNAL_TOKEN, else the file `remit serve`
    # keeps in the data directory. None: a process refuses to start unless
    # `internal_auth_off`.
    internal_token: str | None = field(default=None, repr=False)
    # The credential this process shows on its calls: its role's, derived from the platform
    # token by `acting_as`, or given alone (REMIT_INTERNAL_CREDENTIAL) to a process that
    # must not hold the platform token. None: it shows none.
    internal_credential: str | None = field(default=None, repr=False)
    # REMIT_INTERNAL_AUTH=off: with no token, no token is checked or sent (development only).
    internal_auth_off: bool = False
    # Mutual TLS between the processes (REMIT_INTERNAL_TLS_CERT, _KEY, _CA, and optionally
    # _SERVER_NAME); None: plaintext.
    internal_tls: InternalTls | None = None
    # REMIT_INTERNAL_PLAINTEXT=allow: plaintext internal gRPC beyond loopback is the
    # operator's choice (`refuse_plaintext_beyond_loopback`).
    internal_plaintext_allowed: bool = False
    # Whether `remit serve` makes a test account and prints its keys (REMIT_DEFAULT_ACCOUNT,
    # `--default-account`): True `1`, False `0`; None (unset) only when the core database is
    # an embedded one (`remit.serve.wants_default_account`).
    default_account: bool | None = None

    def acting_as(self, role: str) -> "PlatformConfig":
        """This config for a process of `role`: it shows that role's credential on its calls.
        Without the platform token the credential it was given (if any) stays."""
        if self.internal_token is None:
            return self
        return replace(self, internal_credential=role_credential(self.internal_token, role))

    def core_balanced_target(self, resolve: Callable[[str], str] | None = None) -> str:
        """The gRPC target that reaches every core process: each instance's own port when
        there are several (for a round-robin channel), the core port otherwise."""
        if not self.core_instance_ports:
            return self.core.target
        return core_instances_target(self.core.host, self.core_instance_ports, resolve)

    @property
    def api_base_url(self) -> str:
        return (self.public_url or f"http://{self.api.target}").rstrip("/")

    def with_databases(
        self, core: str | None, vault: str | None, acquirer: str | None
    ) -> "PlatformConfig":
        return replace(
            self, database_url=core, vault_database_url=vault, acquirer_database_url=acquirer
        )

    def to_env(self) -> dict[str, str]:
        """The environment that makes `from_env` in a child return this same config."""
        env = {
            "REMIT_DATA_DIR": str(self.data_dir),
            "REMIT_API_HOST": self.api.host,
            "REMIT_API_PORT": str(self.api.port),
            "REMIT_CORE_HOST": self.core.host,
            "REMIT_CORE_PORT": str(self.core.port),
            "REMIT_VAULT_HOST": self.vault.host,
            "REMIT_VAULT_PORT": str(self.vault.port),
            "REMIT_ACQUIRER_HOST": self.acquirer.host,
            "REMIT_ACQUIRER_PORT": str(self.acquirer.port),
            "REMIT_API_WORKERS": str(self.api_workers),
            "REMIT_CORE_PROCESSES": str(self.core_processes),
            "REMIT_CORE_INSTANCE_PORTS": ",".join(str(p) for p in self.core_instance_ports),
            "REMIT_DEVELOPMENT": "1" if self.development else "0",
            "REMIT_WEBHOOK_ALLOWED_HOSTS": ",".join(self.webhook_allowed_hosts),
        }
        if self.public_url is not None:
            env["REMIT_PUBLIC_URL"] = self.public_url
        if self.internal_token is not None:
            env[TOKEN_ENV] = self.internal_token
        if self.internal_credential is not None:
            env[CREDENTIAL_ENV] = self.internal_credential
        tls = self.internal_tls
        if tls is not None:
            env.update(
                {
                    f"{TLS_ENV}_CERT": str(tls.cert),
                    f"{TLS_ENV}_KEY": str(tls.key),
                    f"{TLS_ENV}_CA": str(tls.ca),
                }
            )
            if tls.server_name is not None:
                env[f"{TLS_ENV}_SERVER_NAME"] = tls.server_name
        if self.internal_plaintext_allowed:
            env[PLAINTEXT_ENV] = "allow"
        if self.internal_auth_off:
            env[INTERNAL_AUTH_ENV] = "off"
        if self.default_account is not None:
            env[DEFAULT_ACCOUNT_ENV] = "1" if self.default_account else "0"
        for name, url in (
            ("DATABASE_URL", self.database_url),
            ("VAULT_DATABASE_URL", self.vault_database_url),
            ("ACQUIRER_DATABASE_URL", self.acquirer_database_url),
        ):
            if url is not None:
                env[name] = url
        return env

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError("DATABASE_URL is not set and no embedded database was started")
        return _usable_database_url("DATABASE_URL", self.database_url)

    def require_vault_database_url(self) -> str:
        if self.vault_database_url is None:
            raise ConfigError("VAULT_DATABASE_URL is not set and no embedded database was started")
        return _usable_database_url("VAULT_DATABASE_URL", self.vault_database_url)

    def require_acquirer_database_url(self) -> str:
        if self.acquirer_database_url is None:
            raise ConfigError(
                "ACQUIRER_DATABASE_URL is not set and no embedded database was started"
            )
        return _usable_database_url("ACQUIRER_DATABASE_URL", self.acquirer_database_url)


# What `remit.storage.embedded.to_sqlalchemy_url` turns into psycopg's URL.
_DATABASE_URL_PREFIXES: Final = ("postgresql://", "postgres://", "postgresql+psycopg://")


def _usable_database_url(name: str, url: str) -> str:
    """`url`, or a ConfigError naming `name` when it is no PostgreSQL URL (a wrong scheme, a
    port that is not a port number). The error never quotes the URL: it holds the password."""
    # A space would end the URL where logs mask it (`remit.core.logging`): a password must
    # percent-encode one (%20), as any URL does.
    if any(ch.isspace() for ch in url) or not (
        url.startswith(_DATABASE_URL_PREFIXES) and _has_valid_port(url)
    ):
        raise ConfigError(
            f"{name} is not a PostgreSQL URL: postgresql://HOST:PORT/DATABASE, with "
            "USER:PASSWORD@ before the host (spaces percent-encoded as %20)"
        )
    return url


def _has_valid_port(url: str) -> bool:
    # Parsed as SQLAlchemy parses it when the engine is made (not as a generic URL): a password
    # may hold `#`, `/` or `?` that a generic parser would take for the URL's later parts.
    # Imported here: reading the configuration does not otherwise need SQLAlchemy.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        port = make_url(url).port
    except (ArgumentError, ValueError):
        return False
    return port is None or 0 <= port <= 65535


# The key that authenticates the ledger's checkpoints (`remit.ledger.checkpoints`): of the
# processes `remit serve` starts, only the worker writes checkpoints. Whoever holds it can
# forge one, so the processes that face callers (the api, the core) do not get it.
LEDGER_CHECKPOINT_KEY_ENV: Final = "REMIT_LEDGER_CHECKPOINT_KEY"
LEDGER_CHECKPOINT_KEY_FILE_ENV: Final = "REMIT_LEDGER_CHECKPOINT_KEY_FILE"
LEDGER_CHECKPOINT_FILE_ENV: Final = "REMIT_LEDGER_CHECKPOINT_FILE"
# The checkpoints' earlier keys, which only `remit ledger verify` needs (to check the lines
# written before the key changed): no process `remit serve` starts gets them.
LEDGER_CHECKPOINT_PREVIOUS_KEYS_ENV: Final = "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS"
LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV: Final = "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE"

# The settings that open a database or hold a key, each handed only to the processes that use
# it: whoever takes over a process gets what its environment holds, and a database's password
# lets them past every check its owner makes (the api, which faces the internet, would hand
# out the core database's, and with it every account, payment and balance). The api uses no
# database; the core and the worker the core's (reconciliation reads the acquirer's settlement
# reports through its gRPC service, not its database); the vault and the acquirer their own.
# A role not listed gets none of them.
ROLE_ONLY_ENV: Final[Mapping[str, frozenset[str]]] = {
    API: frozenset(),
    CORE: frozenset({"DATABASE_URL"}),
    WORKER: frozenset({"DATABASE_URL", LEDGER_CHECKPOINT_KEY_ENV, LEDGER_CHECKPOINT_KEY_FILE_ENV}),
    VAULT: frozenset(
        {
            "VAULT_DATABASE_URL",
            "REMIT_VAULT_KEYS",
            "REMIT_VAULT_KEY_FILE",
            "REMIT_VAULT_DESTINATIONS",
        }
    ),
    ACQUIRER: frozenset({"ACQUIRER_DATABASE_URL"}),
}
# Withheld from every process `remit serve` starts: for `remit ledger verify` alone.
VERIFY_ONLY_ENV: Final = frozenset(
    {LEDGER_CHECKPOINT_PREVIOUS_KEYS_ENV, LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV}
)
RESTRICTED_ENV: Final = frozenset().union(*ROLE_ONLY_ENV.values()) | VERIFY_ONLY_ENV
# libpq reads its own variables (PGPASSWORD, PGPASSFILE, PGSERVICEFILE, PGSSLKEY, ...) besides
# the URL: a process without a database gets none of them.
LIBPQ_ENV_PREFIX: Final = "PG"


def environment_for(role: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment a child process of `role` is started with: only what it may know.

    Of the database URLs and keys (`ROLE_ONLY_ENV`), only its role's own. A process that
    answers gRPC calls gets the platform token, to check its callers' roles with, and works
    out its own credential; a process that only calls (the REST facade, the worker) gets its
    role's credential instead, so that taking it over does not hand out the other roles'. No
    child inherits another's credential."""
    allowed = ROLE_ONLY_ENV.get(role, frozenset())
    withheld = RESTRICTED_ENV - allowed
    uses_a_database = any(name.endswith("DATABASE_URL") for name in allowed)
    child = {
        name: value
        for name, value in env.items()
        if name not in withheld
        and name != CREDENTIAL_ENV
        and (uses_a_database or not name.startswith(LIBPQ_ENV_PREFIX))
    }
    token = child.get(TOKEN_ENV)
    if role in CALLER_ONLY_ROLES and token:
        del child[TOKEN_ENV]
        child[CREDENTIAL_ENV] = role_credential(token, role)
    return child


def core_instances_target(
    host: str, ports: Sequence[int], resolve: Callable[[str], Sequence[str]] | None = None
) -> str:
    """One gRPC target naming the core `host` at each of `ports`, for a round-robin channel.

    gRPC names several addresses in one target only as IP literals of one family
    (`ipv4:a:p,b:q`, `ipv6:[a]:p,[b]:q`); `dns:`, its own resolver, names one port. So a host
    name is resolved here, once, when the api starts (`resolve`, by default the system's
    resolver), and the target names each port at every address the name has: the core copies
    listen on all of them, and the channel skips one that does not answer (an IPv6 address on
    a machine without IPv6). With both families, the IPv4 addresses are written as IPv4-mapped
    IPv6 ones (`[::ffff:10.0.0.5]`), which gRPC dials over IPv4. The api follows a change of
    the name's addresses when it restarts."""
    literal = ip_literal(host)
    addresses = [literal] if literal is not None else _addresses_of(host, resolve)
    if all(isinstance(address, ipaddress.IPv4Address) for address in addresses):
        return "ipv4:" + ",".join(f"{address}:{port}" for address in addresses for port in ports)
    mapped = [
        f"::ffff:{address}" if isinstance(address, ipaddress.IPv4Address) else str(address)
        for address in addresses
    ]
    return "ipv6:" + ",".join(f"[{address}]:{port}" for address in mapped for port in ports)


def _addresses_of(
    host: str, resolve: Callable[[str], Sequence[str]] | None
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = (resolve or resolved_addresses)(host)
    except socket.gaierror as error:
        raise ConfigError(f"REMIT_CORE_HOST {host!r} does not resolve: {error}") from None
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in found:
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ConfigError(f"REMIT_CORE_HOST {host!r} resolves to no address")
    return addresses


# Set by `remit serve` on each core process when there are several: the port only it listens
# on, besides the shared core port.
CORE_INSTANCE_PORT_ENV = "REMIT_CORE_INSTANCE_PORT"


def core_instance_port(environ: Mapping[str, str] | None = None) -> int | None:
    env = os.environ if environ is None else environ
    if not env.get(CORE_INSTANCE_PORT_ENV):
        return None
    return _port(env, CORE_INSTANCE_PORT_ENV, 0)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


N = TypeVar("N", int, float)


def _number_setting(
    environ: Mapping[str, str] | None,
    name: str,
    default: N,
    parse: Callable[[str], N],
    accept: Callable[[N], bool],
    rule: str,
) -> N:
    """A numeric setting from the environment: `default` when unset, else `parse`d and
    `accept`ed, or a ConfigError naming the variable and its `rule`."""
    env = os.environ if environ is None else environ
    raw = env.get(name) or ""
    if raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if not accept(value):
        raise ConfigError(f"{name} must be {rule}")
    return value


DEFAULT_NETWORK_TIMEOUT_S = 10.0


def network_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a call to the card network (the acquirer) may take before its outcome is
    treated as unknown and looked up. REMIT_NETWORK_TIMEOUT_S overrides it. One step at the
    network takes up to about 7 to 9 of these (`remit.payments.step_bounds`); the worker's
    job lease is sized from it (`remit.worker.leases`)."""
    return _number_setting(
        environ,
        "REMIT_NETWORK_TIMEOUT_S",
        DEFAULT_NETWORK_TIMEOUT_S,
        float,
        lambda value: 0 < value <= 120,
        "between 0 and 120 seconds",
    )


# Beyond the network's timeout: the vault's forward waits a little longer than the acquirer
# call it makes (remit.payments.send_budget.VAULT_MARGIN_S), and the core then records the answer.
SHUTDOWN_MARGIN_S = 5.0


def shutdown_grace_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a stopping server lets the calls it is serving finish before cancelling them.
    Longer than the longest legitimate call, a confirm waiting on the vault and the acquirer
    for up to the network's timeout: a shorter grace would cut authorizations off mid-way. So
    it follows REMIT_NETWORK_TIMEOUT_S, the one setting, rather than being a second one that
    could be set below it."""
    return network_timeout_s(environ) + SHUTDOWN_MARGIN_S


DEFAULT_STATEMENT_TIMEOUT_S = 30.0


def statement_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """How long one SQL statement of a service (the core, the vault, the acquirer, the worker)
    may run before PostgreSQL cancels it: a connection stuck on a statement holds a pool slot,
    and its locks, for no longer. Far above any statement a request runs; a cancelled one is a
    temporary fault (57014), retried like the others. REMIT_STATEMENT_TIMEOUT_S overrides it.
    Migrations and the admin commands (verify, reconcile) are not bounded by it."""
    return _number_setting(
        environ,
        "REMIT_STATEMENT_TIMEOUT_S",
        DEFAULT_STATEMENT_TIMEOUT_S,
        float,
        lambda value: 1 <= value <= 3600,
        "between 1 and 3600 seconds",
    )


DEFAULT_IDEMPOTENCY_LEASE_S = 30.0


def idempotency_lease_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a request owns its idempotency key without reaching a recovery point or
    renewing it (`remit.payments.idempotency.lease`): a request renews it while it waits on the
    network (`remit.payments.key_heartbeat`), so it need not outlast a step, only say how soon
    a request that died gives its key up. REMIT_IDEMPOTENCY_LEASE_S overrides it: a lease of
    hours would keep a crashed request's key from its client's retry and the completer for as
    long."""
    return _number_setting(
        environ,
        "REMIT_IDEMPOTENCY_LEASE_S",
        DEFAULT_IDEMPOTENCY_LEASE_S,
        float,
        lambda value: 0 < value <= 3600,
        "between 0 and 3600 seconds",
    )


# Requests one api process serves at once; past it, a request is refused at once (429) rather
# than queued behind the others until every one of them is as slow as the REST deadline. Well
# above what a process keeps in flight when it keeps up (the payments benchmark: 16).
DEFAULT_API_MAX_IN_FLIGHT = 256
# Calls one gRPC server runs at once, past which grpc answers RESOURCE_EXHAUSTED at once: above
# one api process's bound, as several api processes call each core copy.
DEFAULT_GRPC_MAX_CONCURRENT_RPCS = 512
MAX_CONCURRENCY_SETTING = 100_000


def api_max_in_flight(environ: Mapping[str, str] | None = None) -> int:
    """Requests an api process serves at once (`remit.rest.admission`);
    REMIT_API_MAX_IN_FLIGHT overrides it."""
    return _number_setting(
        environ,
        "REMIT_API_MAX_IN_FLIGHT",
        DEFAULT_API_MAX_IN_FLIGHT,
        int,
        lambda value: 1 <= value <= MAX_CONCURRENCY_SETTING,
        f"between 1 and {MAX_CONCURRENCY_SETTING} requests",
    )


# How long an api process waits for a request to arrive: its head, from the connection (or the
# answer before it on the connection), and its body, from its head. A client that sends slowly
# would otherwise hold a connection, and with its body a request's place under
# REMIT_API_MAX_IN_FLIGHT, for ever. Well above what any client needs to send 1 MiB.
DEFAULT_API_READ_TIMEOUT_S = 10.0
# Connections one api process holds open at once; past it a new one is answered at once (429)
# and closed. Well above REMIT_API_MAX_IN_FLIGHT: idle keep-alive connections count too.
DEFAULT_API_MAX_CONNECTIONS = 4096


def api_read_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """How long an api process waits for a request's head, and then for its body
    (`remit.rest.http_protocol`, `remit.rest.body_deadline`); REMIT_API_READ_TIMEOUT_S
    overrides it."""
    return _number_setting(
        environ,
        "REMIT_API_READ_TIMEOUT_S",
        DEFAULT_API_READ_TIMEOUT_S,
        float,
        lambda value: 0 < value <= 300,
        "between 0 and 300 seconds",
    )


def api_max_connections(environ: Mapping[str, str] | None = None) -> int:
    """Connections an api process holds open at once (`remit.rest.http_protocol`);
    REMIT_API_MAX_CONNECTIONS overrides it."""
    return _number_setting(
        environ,
        "REMIT_API_MAX_CONNECTIONS",
        DEFAULT_API_MAX_CONNECTIONS,
        int,
        lambda value: 1 <= value <= MAX_CONCURRENCY_SETTING,
        f"between 1 and {MAX_CONCURRENCY_SETTING} connections",
    )


def grpc_max_concurrent_rpcs(environ: Mapping[str, str] | None = None) -> int:
    """Calls a gRPC server (core, vault, acquirer, accounts...) runs at once;
    REMIT_GRPC_MAX_CONCURRENT_RPCS overrides it."""
    return _number_setting(
        environ,
        "REMIT_GRPC_MAX_CONCURRENT_RPCS",
        DEFAULT_GRPC_MAX_CONCURRENT_RPCS,
        int,
        lambda value: 1 <= value <= MAX_CONCURRENCY_SETTING,
        f"between 1 and {MAX_CONCURRENCY_SETTING} calls",
    )


# Seconds a unit of work waits for a database connection when all of its process's are in use.
# A few: past that the database is the bottleneck, and a queue that grows only makes every
# request slower; the caller is told to retry (503, Stripe-Should-Retry: true) instead.
DEFAULT_DATABASE_POOL_TIMEOUT_S = 5.0


def database_pool_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a unit of work waits for one of its process's database connections
    (`remit.storage.engine`); REMIT_DATABASE_POOL_TIMEOUT_S overrides it."""
    return _number_setting(
        environ,
        "REMIT_DATABASE_POOL_TIMEOUT_S",
        DEFAULT_DATABASE_POOL_TIMEOUT_S,
        float,
        lambda value: 0 < value <= 300,
        "above 0 and at most 300 seconds",
    )


# Seconds a connection attempt to a database may take, from the TCP handshake to the session's
# start, before it fails as the database being out of reach (`remit.storage.connecting`).
# Without it libpq waits as long as the kernel's TCP timeouts, and psycopg 130 s: a database
# host that drops packets (a network partition) would hold every request, and its pool slot,
# that long.
DEFAULT_DATABASE_CONNECT_TIMEOUT_S = 5


def database_connect_timeout_s(environ: Mapping[str, str] | None = None) -> int:
    """How long a connection attempt to a database may take; REMIT_DATABASE_CONNECT_TIMEOUT_S
    overrides it. Whole seconds, at least 2: libpq's own unit and least (it reads 1 as 2)."""
    return _number_setting(
        environ,
        "REMIT_DATABASE_CONNECT_TIMEOUT_S",
        DEFAULT_DATABASE_CONNECT_TIMEOUT_S,
        int,
        lambda value: 2 <= value <= 300,
        "between 2 and 300 seconds",
    )


# Requests a second per account and kind (`remit.rest.rate_limits` says why these defaults).
DEFAULT_RATE_LIMIT_PER_S = 1000.0
MAX_RATE_LIMIT_PER_S = 1_000_000.0


def rate_limit_per_s(kind: str, environ: Mapping[str, str] | None = None) -> float:
    """An account's `kind` ("reads" or "writes") requests a second through the facade;
    REMIT_RATE_LIMIT_READS_PER_S / REMIT_RATE_LIMIT_WRITES_PER_S override it, 0 lifts it."""
    return _number_setting(
        environ,
        f"REMIT_RATE_LIMIT_{kind.upper()}_PER_S",
        DEFAULT_RATE_LIMIT_PER_S,
        float,
        lambda value: 0 <= value <= MAX_RATE_LIMIT_PER_S,
        f"between 0 (no limit) and {MAX_RATE_LIMIT_PER_S:.0f} requests a second",
    )


def client_rate_limit_per_s(environ: Mapping[str, str] | None = None) -> float:
    """Failed authentications (and 3-D Secure page hits, which take no key) a second from one
    client IP address, past which its keys are no longer looked up;
    REMIT_RATE_LIMIT_CLIENT_PER_S overrides it, 0 lifts it. No address is exempt, loopback
    included."""
    return _number_setting(
        environ,
        "REMIT_RATE_LIMIT_CLIENT_PER_S",
        DEFAULT_RATE_LIMIT_PER_S,
        float,
        lambda value: 0 <= value <= MAX_RATE_LIMIT_PER_S,
        f"between 0 (no limit) and {MAX_RATE_LIMIT_PER_S:.0f} requests a second",
    )


# uvicorn's own default: a proxy on loopback.
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


# The widest network REMIT_FORWARDED_ALLOW_IPS takes, by IP version: a private block at most
# (10.0.0.0/8; fc00::/7, the unique-local block). A wider one spans the public addresses
# clients come from, and each client it covers is trusted to write its own X-Forwarded-For.
_WIDEST_PROXY_PREFIX: Final = {4: 8, 6: 7}


def _strict_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry)
    except ValueError:
        return False
    return True


def forwarded_allow_ips(environ: Mapping[str, str] | None = None) -> str:
    """The proxies whose X-Forwarded-For the facade believes (uvicorn's `forwarded_allow_ips`:
    addresses or networks, comma-separated), so that the per-client limit counts clients
    rather than the proxy. REMIT_FORWARDED_ALLOW_IPS overrides it.

    `*`, and a network of every address, are refused: uvicorn then trusts every hop and takes
    the leftmost X-Forwarded-For entry, which is whatever the client wrote (a proxy appends to
    the header it was sent), so every client would choose the address it is counted as, to
    evade its limit or use up another's. A proxy whose address is not known in advance is
    covered by its network, at most as wide as a private block (an IPv4 /8, an IPv6 /7): one
    wider is refused, since it takes in clients too. A network written with host bits
    (`10.0.0.1/8`) is refused too: uvicorn would silently take it for a name, and trust nothing
    by it."""
    env = os.environ if environ is None else environ
    value = (env.get("REMIT_FORWARDED_ALLOW_IPS") or "").strip()
    if value == "":
        return DEFAULT_FORWARDED_ALLOW_IPS
    for entry in value.split(","):
        entry = entry.strip()
        if entry == "*":
            raise ConfigError(
                "REMIT_FORWARDED_ALLOW_IPS: * would let every client choose the address it is "
                "counted as (X-Forwarded-For's leftmost entry); list your proxies' addresses "
                "or networks instead"
            )
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"REMIT_FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network "
                "(give them comma-separated)"
            ) from None
        if network.prefixlen == 0:
            raise ConfigError(
                f"REMIT_FORWARDED_ALLOW_IPS: {entry} trusts every address, which would let "
                "every client choose the address it is counted as; list your proxies' "
                "addresses or networks instead"
            )
        widest = _WIDEST_PROXY_PREFIX[network.version]
        if network.prefixlen < widest:
            raise ConfigError(
                f"REMIT_FORWARDED_ALLOW_IPS: {entry} is wider than any proxy network (IPv4 "
                f"networks wider than /{_WIDEST_PROXY_PREFIX[4]} and IPv6 ones wider than "
                f"/{_WIDEST_PROXY_PREFIX[6]} are refused): it takes in clients' addresses, and "
                "each such client could choose the address it is counted as; list your "
                "proxies' addresses or networks instead"
            )
        if "/" in entry and not _strict_network(entry):
            raise ConfigError(
                f"REMIT_FORWARDED_ALLOW_IPS: {entry} has bits set past its prefix; "
                f"did you mean {network}?"
            )
    return value


DEFAULT_VAULT_SWEEP_GRACE_S = 24 * 3600.0
# The grace must outlast any request between its tokenization and the core's create
# (`remit.payment_methods.vault_sweep`); those take seconds, so an hour is a generous floor.
MIN_VAULT_SWEEP_GRACE_S = 3600.0
MAX_VAULT_SWEEP_GRACE_S = 365 * 24 * 3600.0


def vault_sweep_grace_s(environ: Mapping[str, str] | None = None) -> float:
    """How old a vault card must be before the worker deletes it for being referenced by no
    payment method or token. REMIT_VAULT_SWEEP_GRACE_S overrides it."""
    return _number_setting(
        environ,
        "REMIT_VAULT_SWEEP_GRACE_S",
        DEFAULT_VAULT_SWEEP_GRACE_S,
        float,
        lambda value: MIN_VAULT_SWEEP_GRACE_S <= value <= MAX_VAULT_SWEEP_GRACE_S,
        f"between {MIN_VAULT_SWEEP_GRACE_S:.0f} and {MAX_VAULT_SWEEP_GRACE_S:.0f} seconds",
    )


DEFAULT_VAULT_SWEEP_MAX_DELETIONS = 1000
MAX_VAULT_SWEEP_MAX_DELETIONS = 1_000_000


def vault_sweep_max_deletions(environ: Mapping[str, str] | None = None) -> int:
    """How many vault cards one run of the sweep may delete before it stops and asks for a
    person to look: orphans are rare, so many at once more likely mean a worker pointed at the
    wrong core database. REMIT_VAULT_SWEEP_MAX_DELETIONS overrides it."""
    return _number_setting(
        environ,
        "REMIT_VAULT_SWEEP_MAX_DELETIONS",
        DEFAULT_VAULT_SWEEP_MAX_DELETIONS,
        int,
        lambda value: 1 <= value <= MAX_VAULT_SWEEP_MAX_DELETIONS,
        f"between 1 and {MAX_VAULT_SWEEP_MAX_DELETIONS}",
    )


# Webhook deliveries a worker runs at once, beside its general job slots: a delivery mostly
# waits on the endpoint's answer (its CPU is a fraction of a millisecond), and holds a database
# connection only before and after its POST (`remit.worker.runner.Worker.network_slots`).
DEFAULT_WORKER_DELIVERY_SLOTS = 64
MAX_WORKER_DELIVERY_SLOTS = 1024


def worker_delivery_slots(environ: Mapping[str, str] | None = None) -> int:
    """How many webhook deliveries one worker runs at once, in slots of their own: deliveries
    never take the slots of the payment jobs (expiries, payouts), however slow an endpoint.
    REMIT_WORKER_DELIVERY_SLOTS overrides it."""
    return _number_setting(
        environ,
        "REMIT_WORKER_DELIVERY_SLOTS",
        DEFAULT_WORKER_DELIVERY_SLOTS,
        int,
        lambda value: 1 <= value <= MAX_WORKER_DELIVERY_SLOTS,
        f"between 1 and {MAX_WORKER_DELIVERY_SLOTS}",
    )


DEFAULT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE = 0.5


def vault_sweep_max_unreferenced_share(environ: Mapping[str, str] | None = None) -> float:
    """The share of a large page of vault cards that may be unreferenced before the sweep stops
    as if pointed at the wrong core database (`remit.payment_methods.vault_sweep`). After a
    real burst of orphans (an outage between tokenizations and creates) that a person has
    checked, REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE=1 lets the sweep through; the deletion
    cap still applies."""
    return _number_setting(
        environ,
        "REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE",
        DEFAULT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE,
        float,
        lambda value: 0 < value <= 1,
        "above 0 and at most 1",
    )


DEFAULT_MAX_CLOCK_SKEW_S = 5.0
LARGEST_CLOCK_SKEW_BOUND_S = 3600.0


def _max_clock_skew_s(environ: Mapping[str, str] | None, name: str) -> float:
    return _number_setting(
        environ,
        name,
        DEFAULT_MAX_CLOCK_SKEW_S,
        float,
        lambda value: 0 < value <= LARGEST_CLOCK_SKEW_BOUND_S,
        f"above 0 and at most {LARGEST_CLOCK_SKEW_BOUND_S:.0f} seconds",
    )


def worker_max_clock_skew_s(environ: Mapping[str, str] | None = None) -> float:
    """How far the worker's host clock may be from the database's before the worker warns
    (`remit.storage.database_clock`; the worker itself tells the time by the database's).
    REMIT_WORKER_MAX_CLOCK_SKEW_S overrides it."""
    return _max_clock_skew_s(environ, "REMIT_WORKER_MAX_CLOCK_SKEW_S")


def core_max_clock_skew_s(environ: Mapping[str, str] | None = None) -> float:
    """How far the core's host clock may be from the database's before the core warns
    (`remit.storage.database_clock`; the core itself tells the time by the database's).
    REMIT_CORE_MAX_CLOCK_SKEW_S overrides it."""
    return _max_clock_skew_s(environ, "REMIT_CORE_MAX_CLOCK_SKEW_S")


# A checkpoint key shorter than this is refused: an HMAC key of 32 random characters (as
# `openssl rand -hex 32` prints 64) cannot be guessed.
MIN_LEDGER_CHECKPOINT_KEY_CHARS = 32


def ledger_checkpoint_key(environ: Mapping[str, str] | None = None) -> Secret[bytes] | None:
    """The HMAC key of the ledger's checkpoints, held outside the database:
    REMIT_LEDGER_CHECKPOINT_KEY, else the file REMIT_LEDGER_CHECKPOINT_KEY_FILE names (readable
    by its owner only, as the vault's key file); None when neither is set. Surrounding
    whitespace (a file's last newline) is not part of the key."""
    env = os.environ if environ is None else environ
    inline = (env.get(LEDGER_CHECKPOINT_KEY_ENV) or "").strip()
    if inline:
        return _checkpoint_key(inline, LEDGER_CHECKPOINT_KEY_ENV)
    path_text = env.get(LEDGER_CHECKPOINT_KEY_FILE_ENV) or ""
    if not path_text:
        return None
    text = _private_file(Path(path_text), LEDGER_CHECKPOINT_KEY_FILE_ENV).strip()
    return _checkpoint_key(text, LEDGER_CHECKPOINT_KEY_FILE_ENV)


def ledger_checkpoint_previous_keys(
    environ: Mapping[str, str] | None = None,
) -> tuple[tuple[Secret[bytes], datetime], ...]:
    """The checkpoints' earlier keys, each with the time it was retired, for `remit ledger
    verify` to check the lines written before the key changed: those of
    REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS (separated by whitespace) and of the file
    REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE names (one a line, readable by its owner only),
    each given as KEY@RETIRED_AT (an ISO-8601 UTC time), the key at least as long as the key
    must be.

    The retirement time is required, not optional: a key is changed because it may have
    leaked, and without the time, whoever holds the leaked key could write lines dated after
    the change that verify would pass (`remit.ledger.checkpoints.RetiredKey`)."""
    env = os.environ if environ is None else environ
    name = LEDGER_CHECKPOINT_PREVIOUS_KEYS_ENV
    keys = [_retired_key(text, name) for text in (env.get(name) or "").split()]
    path_text = env.get(LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV) or ""
    if path_text:
        name = LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV
        # One key a line, so that a key may hold spaces, as the key file's may.
        lines = _private_file(Path(path_text), name).splitlines()
        keys += [_retired_key(line.strip(), name) for line in lines if line.strip()]
    return tuple(keys)


def _retired_key(text: str, name: str) -> tuple[Secret[bytes], datetime]:
    """KEY@RETIRED_AT: the key, and the UTC time after which no line under it passes. The
    time is split off at the last @, so that a key may hold one; the message never shows the
    key."""
    key_text, at, retired_text = text.rpartition("@")
    usage = (
        f"{name}: give each earlier key as KEY@RETIRED_AT, RETIRED_AT the ISO-8601 UTC time "
        "the key stopped writing checkpoints (e.g. ...@2026-12-07T08:00:00Z); lines under "
        "it dated later fail"
    )
    if not at:
        raise ConfigError(f"{usage}; a key was given without its retirement time")
    try:
        retired_at = datetime.fromisoformat(retired_text)
    except ValueError:
        raise ConfigError(f"{usage}; a retirement time is malformed") from None
    offset = retired_at.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ConfigError(f"{usage}; a retirement time is not in UTC (Z or +00:00)")
    return _checkpoint_key(key_text, name), retired_at.astimezone(UTC)


def _private_file(path: Path, name: str) -> str:
    """The text of the file setting `name` names, refused unless only its owner can read it."""
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{name} {path} is readable by other users; chmod 600 it")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{name} {path} cannot be read: {type(error).__name__}") from None


def _readable_file(path: Path, name: str) -> None:
    """Nothing when the file setting `name` names can be read, else a ConfigError naming it."""
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise ConfigError(f"{name} {path} cannot be read: {type(error).__name__}") from None


def _checkpoint_key(text: str, name: str) -> Secret[bytes]:
    if len(text) < MIN_LEDGER_CHECKPOINT_KEY_CHARS:
        raise ConfigError(
            f"{name} must hold at least {MIN_LEDGER_CHECKPOINT_KEY_CHARS} characters "
            "(e.g. openssl rand -hex 32)"
        )
    return Secret(text.encode("utf-8"))


def ledger_checkpoint_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where checkpoints of the ledger are appended (REMIT_LEDGER_CHECKPOINT_FILE): by the
    worker, when set, and by `remit ledger checkpoint` unless told another file."""
    env = os.environ if environ is None else environ
    raw = env.get(LEDGER_CHECKPOINT_FILE_ENV) or ""
    return Path(raw) if raw else None


DEFAULT_LEDGER_CHECKPOINT_INTERVAL_S = 3600.0


def ledger_checkpoint_interval_s(environ: Mapping[str, str] | None = None) -> float:
    """How often the worker writes checkpoints of the ledger when a checkpoint file is set.
    REMIT_LEDGER_CHECKPOINT_INTERVAL_S overrides it."""
    return _number_setting(
        environ,
        "REMIT_LEDGER_CHECKPOINT_INTERVAL_S",
        DEFAULT_LEDGER_CHECKPOINT_INTERVAL_S,
        float,
        lambda value: 10 <= value <= 86400,
        "between 10 and 86400 seconds",
    )


DEFAULT_MIGRATION_LOCK_TIMEOUT_S = 5.0
MAX_MIGRATION_LOCK_TIMEOUT_S = 600.0


def migration_lock_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a migration's statement may wait for a lock on a table before the migration is
    rolled back and tried again (`remit.storage.migration_locks`): while it waits, every read
    and write of that table queues behind it. REMIT_MIGRATION_LOCK_TIMEOUT_S overrides it; 0
    waits as long as it takes, as in a maintenance window."""
    return _number_setting(
        environ,
        "REMIT_MIGRATION_LOCK_TIMEOUT_S",
        DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
        float,
        # PostgreSQL counts the timeout in whole milliseconds, and 0 is its "no limit".
        lambda value: value == 0 or 0.001 <= value <= MAX_MIGRATION_LOCK_TIMEOUT_S,
        f"0 (no limit) or between 0.001 and {MAX_MIGRATION_LOCK_TIMEOUT_S:.0f} seconds",
    )


DEFAULT_MIGRATION_LOCK_ATTEMPTS = 5
MAX_MIGRATION_LOCK_ATTEMPTS = 100


def migration_lock_attempts(environ: Mapping[str, str] | None = None) -> int:
    """How many times a migration that timed out waiting for a lock is tried in all before the
    upgrade fails. REMIT_MIGRATION_LOCK_ATTEMPTS overrides it."""
    return _number_setting(
        environ,
        "REMIT_MIGRATION_LOCK_ATTEMPTS",
        DEFAULT_MIGRATION_LOCK_ATTEMPTS,
        int,
        lambda value: 1 <= value <= MAX_MIGRATION_LOCK_ATTEMPTS,
        f"between 1 and {MAX_MIGRATION_LOCK_ATTEMPTS}",
    )


DEFAULT_MIGRATOR_WAIT_S = 3600.0
MAX_MIGRATOR_WAIT_S = 86400.0


def migrator_wait_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a migrator (`remit migrate`, `remit serve` at start) waits for another
    migrating the same database before it fails naming that one
    (`remit.storage.migration_locks`): long enough for a migration that builds an index of a big
    table. REMIT_MIGRATOR_WAIT_S overrides it; 0 waits as long as it takes."""
    return _number_setting(
        environ,
        "REMIT_MIGRATOR_WAIT_S",
        DEFAULT_MIGRATOR_WAIT_S,
        float,
        lambda value: value == 0 or 0.001 <= value <= MAX_MIGRATOR_WAIT_S,
        f"0 (no limit) or between 0.001 and {MAX_MIGRATOR_WAIT_S:.0f} seconds",
    )


# What an operator sets to upgrade a database that holds isk amounts stored before isk became
# two-decimal (`remit.storage.isk_amounts_guard`), and the one value it takes.
STORED_ISK_AMOUNTS = "REMIT_STORED_ISK_AMOUNTS"
ISK_AMOUNTS_READ_AS_HUNDREDTHS = "read-as-hundredths"


def stored_isk_amounts_read_as_hundredths(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the operator has decided that the isk amounts a database holds from before isk
    was counted in hundredths of a króna be read as hundredths from now on (they settled them
    first, or converted them: README, Upgrading). Unset, an upgrade that finds such amounts
    stops; REMIT_STORED_ISK_AMOUNTS=read-as-hundredths lets it through."""
    env = os.environ if environ is None else environ
    raw = env.get(STORED_ISK_AMOUNTS) or ""
    if raw == "":
        return False
    if raw != ISK_AMOUNTS_READ_AS_HUNDREDTHS:
        raise ConfigError(
            f"{STORED_ISK_AMOUNTS} must be {ISK_AMOUNTS_READ_AS_HUNDREDTHS!r} or unset, got {raw!r}"
        )
    return True


DEFAULT_PORTS = {"api": 7420, "core": 7421, "vault": 7422, "acquirer": 7423}


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a port number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, got {port}")
    return port


# Copies of the REST facade, and core processes, `remit serve` runs: each is a process with
# its own connections to the core (and its database), and more than this on one machine is a
# typing mistake rather than a plan.
MAX_API_WORKERS: Final = 64
MAX_CORE_PROCESSES: Final = 64


def _process_count(environ: Mapping[str, str], name: str, most: int) -> int:
    """How many processes setting `name` asks for (1 when unset), or a ConfigError naming it.
    ASCII digits only: `str.isdigit` also holds for "²", which `int` cannot read."""
    raw = environ.get(name) or "1"
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise ConfigError(f"{name} must be between 1 and {most}, got {raw!r}")
    return int(raw)


def from_env(environ: Mapping[str, str] | None = None) -> PlatformConfig:
    env = os.environ if environ is None else environ

    def endpoint(role: str) -> Endpoint:
        upper = role.upper()
        host = (env.get(f"REMIT_{upper}_HOST") or "").strip() or "127.0.0.1"
        problem = host_problem(host)
        if problem is not None:
            raise ConfigError(f"REMIT_{upper}_HOST is no host ({host!r}): {problem}")
        return Endpoint(host=host, port=_port(env, f"REMIT_{upper}_PORT", DEFAULT_PORTS[role]))

    api_workers = _process_count(env, "REMIT_API_WORKERS", MAX_API_WORKERS)
    core_processes = _process_count(env, "REMIT_CORE_PROCESSES", MAX_CORE_PROCESSES)
    instance_ports = tuple(
        _port({"REMIT_CORE_INSTANCE_PORTS": raw.strip()}, "REMIT_CORE_INSTANCE_PORTS", 0)
        for raw in (env.get("REMIT_CORE_INSTANCE_PORTS") or "").split(",")
        if raw.strip()
    )
    data_dir = Path(env.get("REMIT_DATA_DIR") or ".remit")
    credential = env.get(CREDENTIAL_ENV) or None
    config = PlatformConfig(
        data_dir=data_dir,
        api=endpoint("api"),
        core=endpoint("core"),
        vault=endpoint("vault"),
        acquirer=endpoint("acquirer"),
        database_url=env.get("DATABASE_URL") or None,
        vault_database_url=env.get("VAULT_DATABASE_URL") or None,
        acquirer_database_url=env.get("ACQUIRER_DATABASE_URL") or None,
        api_workers=api_workers,
        development=env.get("REMIT_DEVELOPMENT") == "1",
        webhook_allowed_hosts=tuple(
            host.strip()
            for host in (env.get("REMIT_WEBHOOK_ALLOWED_HOSTS") or "").split(",")
            if host.strip()
        ),
        public_url=env.get("REMIT_PUBLIC_URL") or None,
        core_processes=core_processes,
        core_instance_ports=instance_ports,
        # A process given only a credential must not pick the platform token up from the
        # data directory, which it may be able to read.
        internal_token=env.get(TOKEN_ENV) or (None if credential else saved_token(data_dir)),
        internal_credential=credential,
        internal_tls=_internal_tls(env),
        internal_plaintext_allowed=env.get(PLAINTEXT_ENV) == "allow",
        internal_auth_off=env.get(INTERNAL_AUTH_ENV) == "off",
        default_account=_default_account(env),
    )
    refuse_plaintext_beyond_loopback(
        (config.core.host, config.vault.host, config.acquirer.host), config
    )
    # Read again where they are used; checked here so that a malformed value stops the process
    # at start, naming the setting, rather than failing requests later.
    network_timeout_s(env)
    idempotency_lease_s(env)
    statement_timeout_s(env)
    database_connect_timeout_s(env)
    refuse_shared_databases(config)
    return config


def _default_account(env: Mapping[str, str]) -> bool | None:
    raw = (env.get(DEFAULT_ACCOUNT_ENV) or "").strip()
    if not raw:
        return None
    if raw not in ("0", "1"):
        raise ConfigError(f"{DEFAULT_ACCOUNT_ENV} must be 1 or 0, got {raw!r}")
    return raw == "1"


_DATABASE_SETTINGS: Final = ("DATABASE_URL", "VAULT_DATABASE_URL", "ACQUIRER_DATABASE_URL")


def refuse_shared_databases(config: PlatformConfig) -> None:
    """A ConfigError when two of the platform's database URLs name one database (the same
    server and database name, however the URLs spell them): the core's, the vault's and the
    acquirer's migration trees each record their revision in that database's
    `alembic_version`, so the second tree's migrations would fail on the first's revision,
    after the first's tables were made in it; and the vault's cards must be kept apart from
    everything else. The embedded databases are several on one cluster, under names of their
    own. A URL that cannot be read is left to the check where it is used."""
    seen: dict[tuple[str, int, str], str] = {}
    urls = (config.database_url, config.vault_database_url, config.acquirer_database_url)
    for name, url in zip(_DATABASE_SETTINGS, urls, strict=True):
        identity = None if url is None else _database_identity(url)
        if identity is None:
            continue
        earlier = seen.setdefault(identity, name)
        if earlier != name:
            raise ConfigError(
                f"{earlier} and {name} name the same database: the core, the vault and the "
                "acquirer each need a database of their own (their migrations would collide "
                "in one)"
            )


def _database_identity(url: str) -> tuple[str, int, str] | None:
    """The server (host or Unix socket directory, a loopback address as one name) and port
    `url` connects to, and its database name (libpq's default: the user's); None when the URL
    cannot be read, or when a service of pg_service.conf (its `service`, or PGSERVICE) may
    decide what the URL leaves out, which is not judged here.

    As in libpq, a `host`, `port`, `dbname` or `user` of the query wins over the URL's own, and
    PGHOST, PGPORT, PGDATABASE and PGUSER fill in what both leave out (every process started
    from these settings sees the same environment)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        query = parsed.query
        port_text = _query_value(query.get("port")) or parsed.port or os.environ.get("PGPORT")
        port = int(port_text) if port_text else None
    except (ArgumentError, ValueError):
        return None
    host = _query_value(query.get("host")) or parsed.host or os.environ.get("PGHOST") or None
    database = (
        _query_value(query.get("dbname")) or parsed.database or os.environ.get("PGDATABASE") or None
    )
    service = _query_value(query.get("service")) or os.environ.get("PGSERVICE")
    if service and (host is None or database is None or port is None):
        return None
    host = host or "(the default socket)"
    if is_loopback(host):
        host = "(loopback)"
    elif not host.startswith("/"):  # a Unix socket directory's path is case-sensitive
        host = host.lower()
    user = _query_value(query.get("user")) or parsed.username or os.environ.get("PGUSER")
    return host, 5432 if port is None else port, database or user or ""


def _query_value(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value[0] if value else None


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (an IPv4-mapped one too); any other name may resolve
    beyond this machine."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


# gRPC target schemes (https://github.com/grpc/grpc/blob/master/doc/naming.md) whose
# addresses never leave this machine.
_LOCAL_SCHEMES: Final = ("unix:", "unix-abstract:")


def target_hosts(target: str) -> list[str]:
    """The hosts a gRPC target names: `host:port`, `dns:[//authority/]host[:port]`,
    `ipv4:a:p,b:p`, `ipv6:[a]:p,...`; none for a Unix socket, which stays on this machine."""
    if target.startswith(_LOCAL_SCHEMES):
        return []
    for scheme in ("ipv4:", "ipv6:"):
        if target.startswith(scheme):
            return [_host_of(address) for address in target[len(scheme) :].split(",")]
    if target.startswith("dns:"):
        target = target[len("dns:") :]
        if target.startswith("//"):
            target = target[2:].partition("/")[2]  # past the DNS server's authority
    return [_host_of(target)]


def _host_of(address: str) -> str:
    """`host:port` or `[v6]:port` -> the host; a bare host is itself."""
    address = address.strip()
    if address.startswith("["):
        return address[1 : address.find("]")]
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or ":" in host:
        # No port, or a bare IPv6 address: the whole of it is the host.
        return address
    return host


def refuse_plaintext_beyond_loopback(hosts: Iterable[str], config: PlatformConfig) -> None:
    """Internal gRPC carries the internal token on every call and, between the vault and the
    acquirer, card numbers and CVCs. Without mutual TLS it is plaintext, which is acceptable
    only on the loopback interface: a process that would listen on or dial another address
    refuses to start unless the operator says the network in between is protected
    (REMIT_INTERNAL_PLAINTEXT=allow)."""
    if config.internal_tls is not None or config.internal_plaintext_allowed:
        return
    exposed = sorted({host for host in hosts if not is_loopback(host)})
    if exposed:
        raise ConfigError(
            f"internal gRPC would travel in plaintext to or from {', '.join(exposed)}: it "
            "carries the internal token and card data. Configure mutual TLS "
            f"({TLS_ENV}_CERT, {TLS_ENV}_KEY, {TLS_ENV}_CA), or set {PLAINTEXT_ENV}=allow if "
            "the network between the processes is otherwise protected."
        )


def _internal_tls(env: Mapping[str, str]) -> InternalTls | None:
    """The mutual-TLS files: all three of certificate, key and CA, or none. Each is read here,
    at start, so that one missing or unreadable stops the process naming its setting, rather
    than the first gRPC channel or server with a traceback. The key's mode is not checked, as
    the vault's keys are: an orchestrator's secret volumes are commonly group- or
    world-readable (0640, 0644) inside a container that runs one user, and refusing them would
    stop deployments that started before."""
    files = {part: env.get(f"{TLS_ENV}_{part}") or "" for part in ("CERT", "KEY", "CA")}
    given = [part for part, value in files.items() if value]
    if not given:
        return None
    if len(given) != len(files):
        missing = ", ".join(f"{TLS_ENV}_{part}" for part, value in files.items() if not value)
        raise ConfigError(f"mutual TLS needs a certificate, a key and a CA; missing {missing}")
    for part in ("CERT", "KEY", "CA"):
        _readable_file(Path(files[part]), f"{TLS_ENV}_{part}")
    return InternalTls(
        cert=Path(files["CERT"]),
        key=Path(files["KEY"]),
        ca=Path(files["CA"]),
        server_name=env.get(f"{TLS_ENV}_SERVER_NAME") or None,
    )


def saved_token(data_dir: Path) -> str | None:
    """The internal token `remit serve` keeps in `data_dir`, if it made one."""
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
