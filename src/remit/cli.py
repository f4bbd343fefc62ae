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

    ledger = commands.add_parser("ledger", help="inspect the ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = ledger_commands.add_parser(
        "verify",
        help="recompute every balance from the postings and check every hash chain",
        description=(
            "Check that every ledger transaction balances, every stored balance equals the sum "
            "of its postings, every account's hash chain is unbroken, and the Stripe balance "
            "transactions agree with the ledger. Exits 1 on any difference."
        ),
    )
    _add_platform_flags(verify)
    verify.add_argument("--account", help="only this account (acct_...)")

    reconcile = commands.add_parser(
        "reconcile",
        help="match one day of the acquirer's settlement report against the ledger",
        description=(
            "Compare the captures and refunds the ledger recorded on DATE (UTC) with the "
            "acquirer's settlement report for that day, store the result, print it as a table, "
            "and exit 1 when anything is missing on either side or differs in amount."
        ),
    )
    _add_platform_flags(reconcile)
    reconcile.add_argument("--date", required=True, help="settlement date, YYYY-MM-DD (UTC)")
    reconcile.add_argument("--account", help="only this account (acct_...)")

    for role in PROCESS_ROLES:
        single = commands.add_parser(role, help=f"run only the {role} process")
        _add_platform_flags(single)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    if args.command == "ledger" and args.ledger_command == "verify":
        from remit.ledger.cli import verify_command

        return verify_command(config, account_id=args.account)
    if args.command == "reconcile":
        from remit.ledger.cli import reconcile_command

        return reconcile_command(config, day=args.date, account_id=args.account)
    if args.command == "accounts" and args.accounts_command == "create":
        return _create_account(config, raw_card_access=args.raw_card_access,
                               currency=args.currency, as_json=args.json)  # fmt: skip
    return 2


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
