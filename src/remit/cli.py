"""The `remit` command: run the platform or one of its processes, and administer it."""

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

from remit.config import ConfigError, PlatformConfig, from_env
from remit.core.logging import configure_logging

log = logging.getLogger("remit")

_ENDPOINT_FLAGS = (
    ("api", "the REST facade (HTTP)"),
    ("core", "the core gRPC services"),
    ("vault", "the vault gRPC service"),
    ("acquirer", "the simulated acquirer gRPC service"),
)
PROCESS_ROLES = ("api", "core", "vault", "acquirer", "worker")


def _add_platform_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="where embedded databases and local state live (env REMIT_DATA_DIR, default ./.remit)",
    )
    for role, what in _ENDPOINT_FLAGS:
        upper = role.upper()
        parser.add_argument(f"--{role}-host", help=f"host of {what} (env REMIT_{upper}_HOST)")
        parser.add_argument(
            f"--{role}-port", type=int, help=f"port of {what} (env REMIT_{upper}_PORT)"
        )


def _config_from(args: argparse.Namespace) -> PlatformConfig:
    env = dict(os.environ)
    if getattr(args, "data_dir", None):
        env["REMIT_DATA_DIR"] = args.data_dir
    for role, _ in _ENDPOINT_FLAGS:
        host, port = getattr(args, f"{role}_host", None), getattr(args, f"{role}_port", None)
        if host:
            env[f"REMIT_{role.upper()}_HOST"] = host
        if port is not None:
            env[f"REMIT_{role.upper()}_PORT"] = str(port)
    if getattr(args, "api_workers", None):
        env["REMIT_API_WORKERS"] = str(args.api_workers)
    return from_env(env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remit",
        description="remit: a self-hostable payments platform with a Stripe-compatible API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="start every process of the platform",
        description=(
            "Start the REST facade, the core gRPC services, the vault, the simulated acquirer "
            "and the worker as separate processes, wait until each is healthy, print their "
            "addresses and the test keys, and stop them all on Ctrl-C or SIGTERM. Databases "
            "come from DATABASE_URL, VAULT_DATABASE_URL and ACQUIRER_DATABASE_URL, or from "
            "embedded PostgreSQL servers under the data directory."
        ),
    )
    _add_platform_flags(serve)
    serve.add_argument(
        "--api-workers", type=int, help="copies of the REST facade sharing its port (default 1)"
    )

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    _add_platform_flags(migrate)

    accounts = commands.add_parser("accounts", help="manage accounts")
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    create = account_commands.add_parser("create", help="create an account and print its keys")
    _add_platform_flags(create)
    create.add_argument("--json", action="store_true", help="print one JSON object last")
    create.add_argument(
        "--raw-card-access",
        action="store_true",
        help="allow this account to send raw card numbers with its secret key",
    )
    create.add_argument("--currency", default="usd", help="default currency (default usd)")

    upgrade = account_commands.add_parser(
        "upgrade",
        help="move an account's API version pin forward",
        description=(
            "Pin ACCOUNT to VERSION, which must be a known version not older than its current "
            "pin. Requests without a Stripe-Version header, and webhook endpoints without "
            "their own version, then render at VERSION."
        ),
    )
    upgrade.add_argument("account", metavar="ACCOUNT", help="the acct_ id")
    upgrade.add_argument("version", metavar="VERSION", help="e.g. 2026-10-28.endive")
    _add_platform_flags(upgrade)

    versions_parser = commands.add_parser("versions", help="API versions")
    version_commands = versions_parser.add_subparsers(dest="versions_command", required=True)
    version_commands.add_parser(
        "changelog", help="print the changelog (Markdown) generated from versions/"
    )
    version_commands.add_parser("list", help="print every accepted version, newest first")

    for role in PROCESS_ROLES:
        single = commands.add_parser(role, help=f"run only the {role} process")
        _add_platform_flags(single)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "versions":
        return _versions(args.versions_command)
    try:
        config = _config_from(args)
    except ConfigError as error:
        print(f"remit: {error}", file=sys.stderr)
        return 2
    if args.command in PROCESS_ROLES:
        from remit.bootstrap import run_process

        return run_process(args.command, config)
    configure_logging(args.command)
    if args.command == "serve":
        from remit.serve import serve

        return serve(config)
    if args.command == "migrate":
        return _migrate(config)
    if args.command == "accounts" and args.accounts_command == "create":
        return _create_account(config, raw_card_access=args.raw_card_access,
                               currency=args.currency, as_json=args.json)  # fmt: skip
    if args.command == "accounts" and args.accounts_command == "upgrade":
        return _upgrade_account(config, args.account, args.version)
    return 2


def _versions(command: str) -> int:
    if command == "changelog":
        from remit.versioning.changelog import changelog_markdown

        print(changelog_markdown(), end="")
        return 0
    from versions import KNOWN_VERSIONS

    print("\n".join(KNOWN_VERSIONS))
    return 0


def _upgrade_account(config: PlatformConfig, account_id: str, version: str) -> int:
    """Through AccountsService.UpgradeApiVersion, so the pin moves by the service's rules."""
    import grpc

    from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc

    with grpc.insecure_channel(config.core.target) as channel:
        try:
            reply = accounts_pb2_grpc.AccountsServiceStub(channel).UpgradeApiVersion(
                accounts_pb2.UpgradeApiVersionRequest(account_id=account_id, api_version=version),
                timeout=10,
            )
        except grpc.RpcError as error:
            print(f"remit: {_rpc_failure(error, config.core.target)}", file=sys.stderr)
            return 1
    previous = reply.previous_api_version if reply.HasField("previous_api_version") else "none"
    print(f"{account_id}: {previous} -> {reply.api_version}")
    return 0


def _migrate(config: PlatformConfig) -> int:
    from remit.databases import migrate_all, resolve_databases

    resolved = resolve_databases(config)
    try:
        migrate_all(resolved.config)
    finally:
        resolved.stop_embedded()
    print("migrations applied")
    return 0


def _create_account(config: PlatformConfig, *, raw_card_access: bool, currency: str,
                    as_json: bool) -> int:  # fmt: skip
    from remit.accounts.service import AccountsService
    from remit.databases import migrate_all, resolve_databases
    from remit.storage.engine import make_engine

    resolved = resolve_databases(config)
    try:
        migrate_all(resolved.config)

        async def create() -> dict[str, str]:
            engine = make_engine(resolved.config.require_database_url(), pool_size=1)
            try:
                created = await AccountsService(engine).create_account(
                    default_currency=currency, raw_card_access=raw_card_access
                )
            finally:
                await engine.dispose()
            return {
                "id": created.account.id,
                "secret_key": created.secret_key,
                "publishable_key": created.publishable_key,
            }

        account = asyncio.run(create())
    finally:
        resolved.stop_embedded()
    if as_json:
        print(json.dumps(account))
    else:
        print(f"account          {account['id']}")
        print(f"secret key       {account['secret_key']}")
        print(f"publishable key  {account['publishable_key']}")
    return 0


def _rpc_failure(error: object, target: str) -> str:
    # A failed unary call is also a grpc.Call, which carries the status code and details.
    import grpc

    code = getattr(error, "code", None)
    if callable(code) and code() == grpc.StatusCode.UNAVAILABLE:
        return f"core is not reachable at {target}"
    details = getattr(error, "details", None)
    return str(details()) if callable(details) else str(error)
