"""Every admin command fails the way a script can rely on (`remit.command_exits`): 2 when its
input or a service it calls refused or failed, 3 when it failed itself, 75 when a database or
service was out of reach (retry later), one line on stderr each time, and nothing secret on it:
not the password of a database URL, not the internal token.

The real `remit` runs as a subprocess, as an operator's script would run it, against services
served in this process: the accounts and vault services over gRPC, on a database that is real
or, where the point is a database out of reach, on a port nothing listens on.
"""

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.grpc import accounts_registration
from remit.accounts.service import AccountsService
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.grpcutil.internal_auth import server_interceptors
from remit.storage.engine import dispose, make_engine
from remit.vault.forwarding import grpc_destinations
from remit.vault.grpc import VaultServicer
from remit.vault.keystore import FileKeyStore
from remit.vault.service import VaultService
from remit_api.vault.v1 import vault_pb2_grpc
from tests.support.commands import PASSWORD, TOKEN, remit, start_remit, unreachable_url
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(register: Callable[[grpc.aio.Server], None]) -> AsyncIterator[str]:
    """A gRPC server as remit's processes run one: the internal token checked first, then
    errors mapped to statuses. Yields its port."""
    server = grpc.aio.server(interceptors=[*server_interceptors(TOKEN), ErrorMappingInterceptor()])
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield str(port)
    finally:
        await server.stop(0)


@asynccontextmanager
async def engine_at(url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        await dispose(engine)


async def test_keys_list_when_the_cores_database_is_out_of_reach_is_to_be_retried_later(
    tmp_path: Path,
) -> None:
    async with (
        engine_at(unreachable_url("remit_core")) as engine,
        serving(accounts_registration(AccountsService(engine)).add_to_server) as port,
    ):
        ran = await remit("accounts", "keys", "list", "acct_x", tmp_path=tmp_path,
                          REMIT_CORE_PORT=port)  # fmt: skip
    assert ran.returncode == 75
    line = ran.failure_line()
    assert line.startswith(f"remit accounts keys list: the core at 127.0.0.1:{port} failed: ")
    assert "temporary database problem" in line


async def test_keys_list_when_the_core_is_not_running_says_where_it_looked(
    tmp_path: Path,
) -> None:
    port = str(free_port())
    ran = await remit("accounts", "keys", "list", "acct_x", tmp_path=tmp_path,
                      REMIT_CORE_PORT=port)  # fmt: skip
    assert ran.returncode == 75
    assert ran.failure_line() == (
        f"remit accounts keys list: the core is not reachable at 127.0.0.1:{port}; is it running?"
    )


@pytest.mark.parametrize(
    "command",
    [
        ("held-requests", "list"),
        ("held-requests", "retry", "acct_x", "key_x"),
        ("reconciliations",),
    ],
    ids=["held-requests-list", "held-requests-retry", "reconciliations"],
)
async def test_a_call_to_the_core_when_it_is_not_running_is_to_be_retried_later(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    port = str(free_port())
    ran = await remit(*command, tmp_path=tmp_path, REMIT_CORE_PORT=port)
    assert ran.returncode == 75
    assert ran.failure_line() == (
        f"remit {' '.join(command[:2])}: the core is not reachable at 127.0.0.1:{port}; "
        "is it running?"
    )


async def test_keys_revoke_of_an_unknown_key_and_create_for_an_unknown_account_are_refused(
    core_engine: AsyncEngine, tmp_path: Path
) -> None:
    accounts = AccountsService(core_engine)
    account = (await accounts.create_account()).account.id
    async with serving(accounts_registration(accounts).add_to_server) as port:
        revoked = await remit("accounts", "keys", "revoke", account, "key_unknown",
                              tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
        created = await remit("accounts", "keys", "create", "acct_unknown",
                              tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
        listed = await remit("accounts", "keys", "list", "acct_unknown",
                             tmp_path=tmp_path, REMIT_CORE_PORT=port)  # fmt: skip
    # Not "acct_unknown has no working keys": no such account.
    assert listed.returncode == 2
    assert listed.failure_line() == "remit accounts keys list: No such account: 'acct_unknown'"
    assert revoked.returncode == 2
    assert revoked.failure_line() == (
        f"remit accounts keys revoke: {account} has no working key key_unknown"
    )
    assert created.returncode == 2
    assert created.failure_line() == "remit accounts keys create: No such account: 'acct_unknown'"
    assert created.stdout == ""


async def test_a_vault_key_command_when_the_vaults_database_is_out_of_reach(
    tmp_path: Path,
) -> None:
    keys = FileKeyStore(tmp_path / "keys.json")
    keys.ensure_exists()
    async with engine_at(unreachable_url("remit_vault")) as engine:
        vault = VaultService(engine, keys, grpc_destinations({}))

        def register(server: grpc.aio.Server) -> None:
            vault_pb2_grpc.add_VaultServiceServicer_to_server(VaultServicer(vault), server)

        try:
            async with serving(register) as port:
                ran = await remit("vault", "key-status", tmp_path=tmp_path,
                                  REMIT_VAULT_PORT=port)  # fmt: skip
        finally:
            await vault.close()
    assert ran.returncode == 75
    line = ran.failure_line()
    assert line.startswith(f"remit vault key-status: the vault at 127.0.0.1:{port} failed: ")
    assert "temporary database problem" in line
    assert ran.stdout == ""


async def test_migrate_with_a_database_out_of_reach_is_to_be_retried_later(
    tmp_path: Path,
) -> None:
    ran = await remit("migrate", tmp_path=tmp_path)
    assert ran.returncode == 75
    # Each database out of reach on a line of its own: which, where (no password), and why.
    core, vault, acquirer = ran.failure_lines()
    assert core.startswith("remit migrate: the core database (DATABASE_URL postgresql://127.0.0.1:")
    assert core.endswith(
        "/remit_core, needed by core and worker) is out of reach: Connection refused"
    )
    assert vault.startswith("remit migrate: the vault database (VAULT_DATABASE_URL ")
    assert acquirer.startswith("remit migrate: the acquirer database (ACQUIRER_DATABASE_URL ")


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://remit:{PASSWORD}@127.0.0.1/remit",
        f"postgresql://remit:{PASSWORD}@127.0.0.1:port/remit",
        f"postgresql://remit:{PASSWORD}@127.0.0.1:99999/remit",
    ],
)
async def test_migrate_with_a_malformed_database_url_refuses_it(url: str, tmp_path: Path) -> None:
    ran = await remit("migrate", tmp_path=tmp_path, DATABASE_URL=url)
    assert ran.returncode == 2
    assert ran.failure_line().startswith(
        "remit migrate: DATABASE_URL is not a PostgreSQL URL: postgresql://HOST:PORT/DATABASE"
    )


async def test_bad_arguments_are_refused_in_one_line(tmp_path: Path) -> None:
    ran = await remit("accounts", "keys", "revoke", "acct_x", tmp_path=tmp_path)
    assert ran.returncode == 2
    assert ran.failure_line() == (
        "remit accounts keys revoke: the following arguments are required: KEY "
        "(see remit accounts keys revoke --help)"
    )


async def test_accounts_create_refuses_an_unsupported_currency_before_touching_a_database(
    tmp_path: Path,
) -> None:
    # The databases are out of reach: the refusal comes from the arguments alone.
    ran = await remit("accounts", "create", "--currency", "xyz", tmp_path=tmp_path)
    assert ran.returncode == 2
    assert ran.failure_line() == (
        "remit accounts create: argument --currency: Invalid default_currency: 'xyz' is not a "
        "supported currency. (see remit accounts create --help)"
    )


@asynccontextmanager
async def never_answering() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A port that takes connections and never says a word on them. Yields the port and an
    event set once something connects: a command that connected is waiting for an answer."""
    connected = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        connected.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield str(server.sockets[0].getsockname()[1]), connected
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("command", "endpoint"),
    [
        # A blocking gRPC call to the core.
        (("reconciliations",), "REMIT_CORE_PORT"),
        # A call to the REST API from an asyncio loop.
        (("trigger", "payment_intent.created", "--api-key", "sk_test_n0t"), "REMIT_API_PORT"),
    ],
)
async def test_ctrl_c_stops_an_admin_command_with_130_and_one_line_without_a_traceback(
    command: tuple[str, ...], endpoint: str, tmp_path: Path
) -> None:
    async with never_answering() as (port, connected):
        process = await start_remit(*command, tmp_path=tmp_path, **{endpoint: port})
        await asyncio.wait_for(connected.wait(), 60)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 130
    assert err.decode() == f"remit {command[0]}: interrupted before it finished\n"


async def test_ctrl_c_is_how_listen_ends_so_it_exits_0(tmp_path: Path) -> None:
    async with never_answering() as (port, connected):
        process = await start_remit(
            "listen", "--forward-to", "http://127.0.0.1:9/hooks", "--api-key", "sk_test_n0t",
            tmp_path=tmp_path, REMIT_CORE_PORT=port,
        )  # fmt: skip
        await asyncio.wait_for(connected.wait(), 60)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert (process.returncode, err.decode()) == (0, "")


async def test_trigger_when_the_api_is_not_running_is_to_be_retried_later(
    tmp_path: Path,
) -> None:
    port = str(free_port())
    ran = await remit("trigger", "payment_intent.created", "--api-key", "sk_test_n0t",
                      tmp_path=tmp_path, REMIT_API_PORT=port)  # fmt: skip
    assert ran.returncode == 75
    assert ran.failure_line().startswith(
        f"remit trigger: the API is not reachable at 127.0.0.1:{port}"
    )
