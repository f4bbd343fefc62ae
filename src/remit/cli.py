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

    for role in PROCESS_ROLES:
        single = commands.add_parser(role, help=f"run only the {role} process")
        _add_platform_flags(single)
    _add_webhook_commands(commands)
    return parser


def _add_webhook_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    key_help = "act for the account of this secret key (default: the default test account)"
    listen = commands.add_parser(
        "listen",
        help="forward the account's events, signed, to a local URL as they happen",
        description="Print a whsec_ signing secret, then POST every new event of the account "
        "to --forward-to, signed with it the way deliveries are signed.",
    )
    _add_platform_flags(listen)
    listen.add_argument("--forward-to", required=True, help="URL to POST events to")
    listen.add_argument("--api-key", help=key_help)
    listen.add_argument("--events", default="", help="comma-separated event types (default all)")

    trigger = commands.add_parser("trigger", help="create the real objects that make an event fire")
    _add_platform_flags(trigger)
    trigger.add_argument("event", help="event type, e.g. payment_intent.created")
    trigger.add_argument("--api-key", help=key_help)

    webhooks = commands.add_parser("webhooks", help="recover and manage webhook deliveries")
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    resend = actions.add_parser("resend", help="deliver one event to one endpoint again, now")
    resend.add_argument("event", help="evt_ id")
    resend.add_argument("--endpoint", required=True, help="we_ id")
    redeliver = actions.add_parser(
        "redeliver", help="queue again every event whose delivery to an endpoint failed"
    )
    redeliver.add_argument("endpoint", help="we_ id")
    redeliver.add_argument("--since", help="only events created at or after this time")
    roll = actions.add_parser("roll-secret", help="issue a new signing secret for an endpoint")
    roll.add_argument("endpoint", help="we_ id")
    roll.add_argument(
        "--expire-old-after",
        type=int,
        help="seconds the old secret keeps signing (default 86400)",
    )
    for action in (resend, redeliver, roll):
        _add_platform_flags(action)
        action.add_argument("--api-key", help=key_help)


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
    if args.command in ("listen", "trigger", "webhooks"):
        return _webhook_command(args, config)
    if args.command == "accounts" and args.accounts_command == "create":
        return _create_account(config, raw_card_access=args.raw_card_access,
                               currency=args.currency, as_json=args.json)  # fmt: skip
    return 2


def _webhook_command(args: argparse.Namespace, config: PlatformConfig) -> int:
    from remit.webhooks import tools

    try:
        key = tools.api_key_for(config, args.api_key)
        since = tools.parse_since(args.since) if getattr(args, "since", None) else None
    except tools.ToolError as error:
        print(f"remit: {error}", file=sys.stderr)
        return 2
    if args.command == "listen":
        types = [t.strip() for t in args.events.split(",") if t.strip()]
        return tools.run(tools.listen(config, api_key=key, forward_to=args.forward_to, types=types))
    if args.command == "trigger":
        return tools.run(tools.trigger(config, api_key=key, event_type=args.event))
    out = sys.stdout
    if args.webhooks_command == "resend":
        return tools.run(tools.resend(config, api_key=key, event_id=args.event,
                                      endpoint_id=args.endpoint, out=out))  # fmt: skip
    if args.webhooks_command == "redeliver":
        return tools.run(tools.redeliver(config, api_key=key, endpoint_id=args.endpoint,
                                         since=since, out=out))  # fmt: skip
    roll = tools.roll_secret(
        config, api_key=key, endpoint_id=args.endpoint,
        expire_old_after_s=args.expire_old_after, out=out,
    )  # fmt: skip
    return tools.run(roll)


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
