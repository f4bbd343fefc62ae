"""The `remit` command: run the platform or one of its processes, and administer it."""

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from remit.accounts.command_keys import IDEMPOTENCY_KEY_HELP
from remit.acquirer.faults import FAULTS_HELP
from remit.command_exits import (
    EXIT_CODES_HELP,
    EXIT_REFUSED,
    CommandFailedError,
    CommandRefusedError,
    CommandTemporaryFailureError,
    refused,
    run_reporting_failures,
    summary,
)
from remit.config import ConfigError, PlatformConfig, from_env
from remit.core.logging import configuration_kept, configure_logging, install_masked_excepthook
from remit.grpcutil.internal_roles import ADMIN

log = logging.getLogger("remit")

_ENDPOINT_FLAGS = (
    ("api", "the REST facade (HTTP)"),
    ("core", "the core gRPC services"),
    ("vault", "the vault gRPC service"),
    ("acquirer", "the simulated acquirer gRPC service"),
)
PROCESS_ROLES = ("api", "core", "vault", "acquirer", "worker")
# Run until stopped, under a supervisor or an operator's eye: not admin commands, and so not
# bound by `remit.command_exits`.
LONG_RUNNING = ("serve", *PROCESS_ROLES)
# The attributes that hold a command's sub-command names, outermost first.
_SUBCOMMAND_DESTS = (
    "accounts_command",
    "keys_command",
    "versions_command",
    "vault_command",
    "ledger_command",
    "webhooks_command",
    "radar_group",
    "radar_command",
    "held_requests_command",
    "jobs_command",
    "balance_release_failures_command",
    "card_fingerprints_command",
)


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments in one line with exit code 2, as every other refusal of an admin
    command is: a script reads one line of stderr, not a usage block (`--help` shows that)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _supported_currency(value: str) -> str:
    """A currency argument as the accounts service stores it, refused as bad arguments are (exit
    2, before any database is touched) when remit does not support it."""
    from remit.accounts.settings import checked_currency
    from remit.core.errors import RemitError

    try:
        return checked_currency(value)
    except RemitError as refusal:
        raise argparse.ArgumentTypeError(refusal.message) from None


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


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    from remit.acquirer.faults import FAULT_SETTINGS

    group = parser.add_argument_group("simulated acquirer faults")
    for setting in FAULT_SETTINGS:
        if setting.is_switch:
            group.add_argument(
                setting.flag, action="store_true", help=f"{setting.help} (env {setting.env}=1)"
            )
        else:
            group.add_argument(setting.flag, help=f"{setting.help} (env {setting.env})")


def _apply_fault_flags(args: argparse.Namespace) -> None:
    """Flags become environment variables, which `remit serve` hands down to the acquirer."""
    from remit.acquirer.faults import FAULT_SETTINGS, FaultConfig

    for setting in FAULT_SETTINGS:
        value = getattr(args, setting.flag.removeprefix("--").replace("-", "_"), None)
        if setting.is_switch and value:
            os.environ[setting.env] = "1"
        elif not setting.is_switch and value is not None:
            os.environ[setting.env] = value
    FaultConfig.from_env(os.environ)  # fail now, with the setting's name, if malformed


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
    # `is not None`: a 0 given is refused by `from_env`, not taken for no flag at all.
    if getattr(args, "api_workers", None) is not None:
        env["REMIT_API_WORKERS"] = str(args.api_workers)
    if getattr(args, "core_processes", None) is not None:
        env["REMIT_CORE_PROCESSES"] = str(args.core_processes)
    if getattr(args, "default_account", False):
        env["REMIT_DEFAULT_ACCOUNT"] = "1"
    return from_env(env)


def build_parser() -> argparse.ArgumentParser:
    # Typed as the base class: sub-command helpers take any parser; argparse makes each
    # sub-command parser a _Parser too (`add_subparsers` defaults to the parent's class).
    parser: argparse.ArgumentParser = _Parser(
        prog="remit",
        description="remit: a self-hostable payments platform with a Stripe-compatible API.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="start every process of the platform",
        epilog=FAULTS_HELP,
        description=(
            "Start the REST facade, the core gRPC services, the vault, the simulated acquirer "
            "and the worker as separate processes, wait until each is healthy, print their "
            "addresses (and, on an embedded core database or with --default-account, a test "
            "account's keys), and stop them all on Ctrl-C, SIGTERM or SIGHUP (the terminal "
            "closed; not when started with SIGHUP ignored, as by nohup). Databases "
            "come from DATABASE_URL, VAULT_DATABASE_URL and ACQUIRER_DATABASE_URL, or from "
            "embedded PostgreSQL servers under the data directory."
        ),
    )
    _add_platform_flags(serve)
    serve.add_argument(
        "--api-workers",
        type=int,
        help="copies of the REST facade sharing its port (env REMIT_API_WORKERS, default 1)",
    )
    serve.add_argument(
        "--core-processes",
        type=int,
        help="core processes; the REST facade spreads its calls over them "
        "(env REMIT_CORE_PROCESSES, default 1)",
    )
    serve.add_argument(
        "--default-account",
        action="store_true",
        help="create a test account on the first start and print its keys at every start, "
        "even on databases of DATABASE_URL (env REMIT_DEFAULT_ACCOUNT=1; by default only on "
        "an embedded core database; REMIT_DEFAULT_ACCOUNT=0 never)",
    )
    _add_fault_flags(serve)

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
    create.add_argument(
        "--currency",
        default="usd",
        type=_supported_currency,
        help="default currency (default usd)",
    )
    create.add_argument("--idempotency-key", metavar="KEY", help=IDEMPOTENCY_KEY_HELP)

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
    _add_key_commands(account_commands)

    versions_parser = commands.add_parser("versions", help="API versions")
    version_commands = versions_parser.add_subparsers(dest="versions_command", required=True)
    version_commands.add_parser(
        "changelog", help="print the changelog (Markdown) generated from versions/"
    )
    version_commands.add_parser("list", help="print every accepted version, newest first")

    report = commands.add_parser(
        "settlement-report",
        help="print the simulated acquirer's settlement report for one day",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Print every capture and refund the simulated acquirer settled on one UTC day, "
            "oldest first,\nwith amounts and fees in minor units, as they stood when the report "
            "began: a row committed\nwhile it is read is left to the next report. Reads "
            "ACQUIRER_DATABASE_URL, or the embedded\ndatabase under the data directory.\n\n"
            "DATE must be over in UTC, as for remit reconcile: a future date is refused, and so "
            "is today\nunless --allow-partial; a report of today is marked partial, since more "
            "may settle on it.\nA day is over once its last operations can no longer be "
            "committing: a grace after midnight\n(the pool wait and statement timeouts, the "
            "acquirer's as it recorded them when it started,\nwhen longer than this shell's), "
            "told "
            "by the acquirer database's clock; within it the\ncommand exits 75, to run again "
            "from the time it names.\n\n"
            "The report ends with its own count and totals, so that one cut short shows:\n"
            "  csv   a header line, one line per row (each starts with its settled_at), then "
            "the trailer,\n        the last line:\n"
            "          # end date=D [merchant_id=M] [partial=true] rows=N CUR.rows=N "
            "CUR.amount=SUM\n                CUR.fee=SUM CUR.released=SUM ...\n"
            "        merchant_id with --merchant, partial=true for today; then the rows, "
            "amounts, fees\n        and released remainders of each currency in alphabetical "
            "order (sums of the\n        amount, fee and released columns, minor units; "
            "released is what a partial\n        capture gave back of its authorization, and "
            "is not part of amount)\n"
            '  json  {"date", "merchant_id" (null without --merchant), "partial", "rows", '
            '"row_count",\n         "totals": {CUR: {"rows", "amount", "fee", "released"}}}, '
            "each row with the\n         CSV's columns\n\n"
            "With --output, the report is written to a temporary file beside PATH, synced, "
            "and renamed\nto PATH only once complete: PATH never holds part of a report.\n\n"
            "Exit codes: 0 written, 2 refused input (a malformed or future date, today "
            "without\n--allow-partial, an output path that cannot be written, a database not "
            "migrated to this\nversion: it never migrates), 3 the command failed (a bug), 75 "
            "retry later (its database\nout of reach)."
        ),
    )
    _add_platform_flags(report)
    report.add_argument("--date", required=True, help="the UTC settlement date, YYYY-MM-DD")
    report.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="output format (default csv)")  # fmt: skip
    report.add_argument("--merchant", help="only this merchant's rows (acct_ id)")
    report.add_argument(
        "--output",
        metavar="PATH",
        help="write the report to PATH, atomically, instead of to stdout",
    )
    report.add_argument(
        "--allow-partial",
        action="store_true",
        help="report on today although it is not over (UTC); the report is marked partial",
    )

    vault = commands.add_parser(
        "vault",
        help="run only the vault process, or manage its keys (rotate-key, key-status, ...)",
    )
    _add_platform_flags(vault)
    vault_commands = vault.add_subparsers(dest="vault_command")
    rotate = vault_commands.add_parser(
        "rotate-key",
        help="add a key-encryption key version; old data keys are re-wrapped in the background",
    )
    _add_platform_flags(rotate)
    rotate.add_argument(
        "--wait", action="store_true", help="re-wrap every older data key before returning"
    )
    status = vault_commands.add_parser("key-status", help="show key versions and their use")
    _add_platform_flags(status)
    retire = vault_commands.add_parser(
        "retire-keys", help="refuse decryption with key versions below a minimum"
    )
    _add_platform_flags(retire)
    retire.add_argument("--minimum-version", type=int, required=True)
    remove = vault_commands.add_parser(
        "remove-key-version",
        help="delete a retired key version from the key file once no card uses it",
        description=(
            "Delete key version VERSION's material from the vault's key file. Refused for the "
            "current version, a version not retired (see retire-keys), and a version a card "
            "not deleted still has its data key wrapped under. Afterwards no data key wrapped "
            "under it (a deleted card's old row versions, the WAL, database backups) can be "
            "unwrapped with the key file; copies of earlier key files still can, so destroy "
            "those too."
        ),
    )
    _add_platform_flags(remove)
    remove.add_argument(
        "--version", type=int, required=True, metavar="VERSION", help="the key version to remove"
    )
    lost = vault_commands.add_parser(
        "declare-key-version-lost",
        help="end the payments held for a key version no copy of the key file holds any more",
        description=(
            "Record in the vault database, with who and when, that key version VERSION is lost "
            "for good: missing from the vault's key file, and from every copy of it (backups "
            "included). The cards whose data keys it wraps are refused from then on as under "
            "a retired version, instead of as under a missing one, which holds their payments "
            "(card_key_unavailable in held-requests list) until the version is back: their "
            "next retry, or the completer's, ends them with what the acquirer holds for them "
            "(an authorization it holds stands; with none, the payment fails as a card that "
            "can no longer be used). Refused for a version still in the key file (rotate, "
            "retire and remove it instead) and for one it never numbered. Running it again "
            "changes nothing. A key file restored with the version after all opens its cards "
            "again."
        ),
    )
    _add_platform_flags(lost)
    lost.add_argument(
        "--version", type=int, required=True, metavar="VERSION", help="the key version lost"
    )
    lost.add_argument(
        "--operator",
        default=None,
        metavar="NAME",
        help=(
            "who declares it, for the vault's audit log (default: this shell's user and host, "
            "USER@HOST, the user being the login name of its uid)"
        ),
    )
    reseal = vault_commands.add_parser(
        "reseal-cards",
        help="re-seal every card stored before cards were bound to their account",
        description=(
            "Open each card still sealed to its vault token alone and seal it anew under a "
            "fresh data key, bound to its account and wrapped under the current key version. "
            "The vault does this in the background by itself; this waits until it is done. "
            "Copies of the old rows (the WAL, backups) stay readable until the key version "
            "that wrapped their data keys is retired and removed (see remove-key-version)."
        ),
    )
    _add_platform_flags(reseal)
    _add_vault_audit_command(vault_commands)

    ledger = commands.add_parser("ledger", help="inspect the ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = ledger_commands.add_parser(
        "verify",
        help="recompute every balance from the postings and check every hash chain",
        description=(
            "Check that every ledger transaction balances, every stored balance equals the sum "
            "of its postings, every account's hash chain is unbroken, and the Stripe balance "
            "transactions agree with the ledger. It never changes the schema: a core database "
            "not migrated to this version (remit migrate) is refused. Exits 0 when all agree, "
            "1 on any difference, 2 on refused input or a schema not at this version's, 3 when "
            "the command itself failed (a bug), 75 when its database was out of reach (retry "
            "later): then nothing was checked."
        ),
    )
    _add_platform_flags(verify)
    verify.add_argument("--account", help="only this account (acct_...)")
    verify.add_argument(
        "--checkpoints",
        type=Path,
        metavar="FILE",
        help=(
            "also check every checkpoint in FILE (remit ledger checkpoint): its HMAC under the "
            "key it names, REMIT_LEDGER_CHECKPOINT_KEY (or _KEY_FILE) or an earlier one of "
            "REMIT_LEDGER_CHECKPOINT_PREVIOUS_KEYS (or _PREVIOUS_KEYS_FILE, each given as "
            "KEY@RETIRED_AT, a UTC time), and that the account's hash chain still passes "
            "through its position with its hash; names the first checkpoint the database no "
            "longer agrees with, lines of keys not given, lines of an earlier key dated after "
            "its retirement, and lines out of order (an account's time or sequence going back)"
        ),
    )
    checkpoint = ledger_commands.add_parser(
        "checkpoint",
        help="append a checkpoint of every hash chain to a file outside the database",
        description=(
            "Append, for every account's hash chain, its position and hash now, authenticated "
            "with the HMAC key of REMIT_LEDGER_CHECKPOINT_KEY or REMIT_LEDGER_CHECKPOINT_KEY_FILE, "
            "to the checkpoint file (--file, else REMIT_LEDGER_CHECKPOINT_FILE), synced to disk. "
            "remit ledger verify --checkpoints FILE then shows history rewritten before a "
            "checkpoint, even with its hashes recomputed. Changes nothing in the database."
        ),
    )
    _add_platform_flags(checkpoint)
    checkpoint.add_argument("--account", help="only this account (acct_...)")
    checkpoint.add_argument(
        "--file", type=Path, metavar="FILE", help="the checkpoint file to append to"
    )

    reconcile = commands.add_parser(
        "reconcile",
        help="match one day of the acquirer's settlement report against the ledger",
        description=(
            "Compare the acquirer's settlement report for DATE (UTC) with the captures and "
            "refunds the ledger recorded for those settlements, whatever day it recorded them, "
            "and with the ledger's other captures and refunds of DATE that the acquirer did not "
            "settle on another day; store the result, print it as a table. DATE must be over "
            "in UTC: a future date is refused, and so is today unless --allow-partial. A new "
            "run of a DATE (and --account) supersedes the earlier ones, which stay stored "
            "(remit reconciliations lists them). "
            "A pair is compared on amount, currency, merchant, authorization and the "
            "network's fee, and a capture also on what it released of its authorization "
            "uncaptured (a partial capture's remainder); a row that does not match says what "
            "differs. A refund the ledger booked as failed (its money given back to the "
            "balance) that the acquirer settled is an outcome_mismatch. It never changes the "
            "schema: a core database not migrated to this version (remit migrate) is refused. "
            "Exit codes: 0 everything matched; 1 something is missing on either side or "
            "differs; 2 refused input (a malformed or future date, today without "
            "--allow-partial) or the acquirer failed; 3 the command itself failed (a bug), "
            "one line on stderr, the traceback only in the log at DEBUG level "
            "(REMIT_LOG_LEVEL=DEBUG); 75 retry later: its database or the acquirer out of "
            "reach, or DATE ended but is within the acquirer's grace after midnight, its last "
            "operations maybe still committing (the message says from when it is whole)."
        ),
    )
    _add_platform_flags(reconcile)
    reconcile.add_argument("--date", required=True, help="settlement date, YYYY-MM-DD (UTC)")
    reconcile.add_argument("--account", help="only this account (acct_...)")
    reconcile.add_argument(
        "--allow-partial",
        action="store_true",
        help="reconcile today although it is not over (UTC); the result is stored marked "
        "partial, and movements still in flight show as missing",
    )

    reconciliations = commands.add_parser(
        "reconciliations",
        help="list the stored reconciliation runs, the latest first",
        description=(
            "List the reconciliation runs the core stored (remit reconcile), the latest to "
            "finish first, superseded ones included: the day and scope each covered (an "
            "account, or every account), when it started and finished (UTC; runs stored "
            "before remit recorded the start show none), whether it was partial (the day was "
            "not over) or superseded by a later run of the same day and scope, and how many "
            "items it counted of each status (matched, missing_in_ledger, "
            "missing_at_acquirer, amount_mismatch, fee_mismatch, outcome_mismatch). Asks the "
            'core, which must be running. --json prints {"data": [{"id", "date", "account_id" '
            '(null for every account), "started", "finished", "partial", "superseded_by", '
            '"counts": {STATUS: N}}], "has_more"}. Exits 0 whatever the runs found (remit '
            "reconcile's exit code says that); 2 on refused input or when the core refused "
            "the request or failed; 75 when the core could not be reached, did not answer in "
            "time or asked for a retry later."
        ),
    )
    _add_platform_flags(reconciliations)
    reconciliations.add_argument(
        "--limit", type=int, default=30, help="how many runs, 1 to 100 (default 30)"
    )
    reconciliations.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )

    _add_held_request_commands(commands)
    _add_job_commands(commands)
    _add_balance_release_failure_commands(commands)
    _add_card_fingerprint_commands(commands)

    for role in PROCESS_ROLES:
        if role == "vault":
            continue
        if role == "acquirer":
            single = commands.add_parser(
                role, help="run only the acquirer process", epilog=FAULTS_HELP
            )
            _add_fault_flags(single)
        else:
            single = commands.add_parser(role, help=f"run only the {role} process")
        _add_platform_flags(single)
    _add_webhook_commands(commands)
    from remit.radar.commands import add_commands as add_radar_commands

    for radar_command in add_radar_commands(commands):
        _add_platform_flags(radar_command)
        radar_command.add_argument(
            "--api-key",
            help="act for the account of this secret key (default: the default test account)",
        )
    # Filled for the commands whose help keeps its line breaks (settlement-report's).
    exit_codes = textwrap.fill(EXIT_CODES_HELP, width=88)
    for admin_command in _admin_commands(parser):
        admin_command.epilog = exit_codes
    return parser


def _admin_commands(
    parser: argparse.ArgumentParser, *, top: bool = True
) -> Iterator[argparse.ArgumentParser]:
    """The parser of every admin command (every command without sub-commands but the long
    running ones: `remit vault` runs the vault, `remit vault rotate-key` is an admin command)."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, command in action.choices.items():
            if any(isinstance(inner, argparse._SubParsersAction) for inner in command._actions):
                yield from _admin_commands(command, top=False)
            elif not (top and name in LONG_RUNNING):
                yield command


def command_name(args: argparse.Namespace) -> str:
    """The command as typed, without its arguments: `accounts keys revoke`, `migrate`."""
    names = [args.command]
    names.extend(name for dest in _SUBCOMMAND_DESTS if (name := getattr(args, dest, None)))
    return " ".join(names)


def _add_key_commands(
    account_commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    from remit.accounts.domain import DEFAULT_EXPIRE_OLD_AFTER_HOURS
    from remit.accounts.key_events import DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT

    keys = account_commands.add_parser(
        "keys",
        help="list, create, revoke and roll an account's API keys, and read their audit record",
        description=(
            "Manage ACCOUNT's API keys through the core. A new key is printed once, when it is "
            "made: only its digest is kept. Every change is recorded with it, under the "
            "operator running the command (USER@HOST) and its --reason (see keys audit)."
        ),
    )
    actions = keys.add_subparsers(dest="keys_command", required=True)

    def action(name: str, **settings: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, **settings)  # type: ignore[arg-type]
        parser.add_argument("account", metavar="ACCOUNT", help="the acct_ id")
        _add_platform_flags(parser)
        return parser

    listed = action("list", help="the account's working keys (never the keys)")
    listed.add_argument("--all", action="store_true", help="revoked keys too")
    create = action("create", help="make a secret key (or --publishable) and print it")
    create.add_argument("--publishable", action="store_true", help="a pk_ key instead")
    create.add_argument("--idempotency-key", metavar="KEY", help=IDEMPOTENCY_KEY_HELP)
    _add_reason_flag(create)
    revoke = action(
        "revoke",
        help="stop a key working, now or after --expire-after hours",
        description="Revoke KEY at once, or set it to stop after --expire-after hours (what a "
        "roll does to the old key). The account's last secret key with no end set is only "
        "revoked with --force: without one its servers are locked out of the API.",
    )
    revoke.add_argument("key", metavar="KEY", help="the key_ id (see keys list)")
    revoke.add_argument("--force", action="store_true", help="even the last secret key")
    revoke.add_argument(
        "--expire-after",
        type=float,
        default=0.0,
        metavar="HOURS",
        help="hours the key keeps working, 0 to 168 (default 0: stop now)",
    )
    _add_reason_flag(revoke)
    roll = action(
        "roll",
        help="make a new secret key; the old one keeps working for a while",
        description="Make a new secret key and print it, then set the old one to stop after "
        "--expire-old-after hours, long enough to move every server over to the new one. Run "
        "again with the --key and --idempotency-key a run that failed without an answer names "
        "(exit 75), it makes no second key: it names the key made, whose plaintext nobody was "
        "shown, leaves the old key as it is and exits 2. A new key made and shown whose old "
        "key could not be set to stop exits 75 when the core was out of reach (revoke the old "
        "key later), 2 when it refused.",
    )
    roll.add_argument("--key", help="the secret key_ to roll (needed when there are several)")
    roll.add_argument("--idempotency-key", metavar="KEY", help=IDEMPOTENCY_KEY_HELP)
    roll.add_argument(
        "--expire-old-after",
        type=float,
        default=DEFAULT_EXPIRE_OLD_AFTER_HOURS,
        metavar="HOURS",
        help="hours the old key keeps working, 0 to 168 (default 24)",
    )
    _add_reason_flag(roll)
    audit = action(
        "audit",
        help="the record of the account's key changes, newest first (never the keys)",
        description="Every key made and every stop set on one, newest first: when, which key "
        "(its id and masked form), what was done (the stop before and after), by whom (the "
        "internal role of the call, and the operator it named) and why (--reason). A page at "
        "a time: when more are older, the last line is the command that lists them.",
    )
    audit.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_AUDIT_LIMIT,
        help=f"how many, 1 to {MAX_AUDIT_LIMIT} (default {DEFAULT_AUDIT_LIMIT})",
    )
    audit.add_argument(
        "--starting-after", metavar="EVENT", help="list the events older than this kevt_ id"
    )


def _add_vault_audit_command(
    vault_commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    from remit.vault.audit_arguments import AUDIT_ACTIONS, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT

    audit = vault_commands.add_parser(
        "audit",
        help="the vault's audit log, newest first: who touched which card or key, when and why",
        description=(
            "Every access to a card and every key operation the vault recorded, newest first "
            "(gRPC ListAuditEvents), one line each: when, the event's id, the action, whether "
            "it succeeded or failed, who asked (the requester) and why (the purpose), both "
            "quoted, then the account, vault token, destination, reference (quoted) and key "
            "version it concerns, when it names them. Never card data. Only the events every "
            "filter given matches; a page at a time: when more are older, the last line is the "
            "command that lists them."
        ),
    )
    _add_platform_flags(audit)
    audit.add_argument("--account", metavar="ACCOUNT", help="only events of this acct_ id")
    audit.add_argument("--token", metavar="TOKEN", help="only events of this vault token")
    audit.add_argument(
        "--requester", metavar="NAME", help='only events this requester asked for (e.g. "core")'
    )
    audit.add_argument(
        "--action", choices=AUDIT_ACTIONS, metavar="ACTION",
        help=f"only events of this action: {', '.join(AUDIT_ACTIONS)}",
    )  # fmt: skip
    audit.add_argument(
        "--since", metavar="TIME",
        help="only events at or after TIME (a unix timestamp or ISO 8601 time, UTC unless it "
        "says otherwise)",
    )  # fmt: skip
    audit.add_argument("--before", metavar="TIME", help="only events before TIME (as --since)")
    audit.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_AUDIT_LIMIT,
        help=f"how many, 1 to {MAX_AUDIT_LIMIT} (default {DEFAULT_AUDIT_LIMIT})",
    )
    audit.add_argument(
        "--starting-after", metavar="EVENT", help="list the events older than this vae_ id"
    )


def _add_reason_flag(parser: argparse.ArgumentParser) -> None:
    from remit.accounts.key_events import MAX_REASON_LENGTH

    parser.add_argument(
        "--reason",
        help=f"why, for the key's audit record (at most {MAX_REASON_LENGTH} characters)",
    )


def _add_held_request_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    from remit.payments.held_request_bounds import (
        DEFAULT_LIST_LIMIT,
        DEFAULT_OLDER_THAN_MINUTES,
        MAX_OLDER_THAN_MINUTES,
    )

    held = commands.add_parser(
        "held-requests",
        help="list the payment requests left unfinished at a recovery point, retry one now",
        description=(
            "Payment requests (a payment, capture, cancel or refund) that stopped part-way wait "
            "at a recovery point until a retry with their idempotency key, or the worker's "
            "completer, finishes them. One that stays unfinished needs an operator: e.g. the "
            "acquirer holds another operation under its reference (network_record_mismatch), "
            "or it has been out of reach for long. Both commands ask the core, which must be "
            "running."
        ),
    )
    actions = held.add_subparsers(dest="held_requests_command", required=True)
    listed = actions.add_parser(
        "list",
        help="the requests unfinished for --older-than minutes or more, the oldest first",
        description=(
            "List the requests begun at least --older-than minutes ago (default "
            f"{DEFAULT_OLDER_THAN_MINUTES}; 0 lists those in flight too) and still unfinished, "
            "the oldest first: age, account, endpoint, recovery point ('(running)' while a "
            "request works on it), how often the completer tried it, when its latest try "
            "failed, the refund, charge or PaymentIntent it is about, the id of the request "
            "that began it and the idempotency key (remit-auto-... for a request sent without "
            "one, which only its request id names); "
            "below it, the failure's code and message. For network_record_mismatch, the "
            "message names the reference, the acquirer's operation under it and the fields that "
            "differ. A request whose try went past a limit of the database (database_limit) "
            "is tried by the completer no more: retry it once the cause is dealt with. "
            'Listing changes nothing. --json prints {"as_of", "data": '
            '[{"account_id", "idempotency_key", "request_id", "endpoint", "recovery_point", '
            '"created", "age_seconds", "last_run", "in_progress", '
            '"payment_intent", "charge", "refund", "completer_attempts", '
            '"last_failure": null or {"at", "code", "message", "reference", '
            '"operation", "differing_fields"}}], "has_more"}, times in UTC. Exits 1 '
            "when it lists any request, 0 when none, 2 on refused input or when the core "
            "refused or failed, 75 when it could not be reached or did not answer in time."
        ),
    )
    listed.add_argument(
        "--older-than",
        type=int,
        default=DEFAULT_OLDER_THAN_MINUTES,
        metavar="MINUTES",
        help=f"only requests begun at least this long ago, 0 to {MAX_OLDER_THAN_MINUTES} "
        f"(default {DEFAULT_OLDER_THAN_MINUTES})",
    )
    listed.add_argument("--account", help="only this account's requests (acct_...)")
    listed.add_argument(
        "--limit", type=int, default=DEFAULT_LIST_LIMIT, help="how many, 1 to 100 (default 50)"
    )
    listed.add_argument(
        "--json", action="store_true", help="print one JSON object instead of a table"
    )
    retry = actions.add_parser(
        "retry",
        help="try once more, now, to finish one held request, as the completer would",
        description=(
            "Run one more of the completer's tries at the request under KEY of ACCOUNT now, "
            "whatever its backoff: it looks the operation up at the acquirer and finishes the "
            "request only with what the acquirer holds, exactly as the completer or the "
            "client's retry with the key would. Nothing marks a payment paid or failed by hand. "
            "Refused (2) for an unknown key or a finished request; exits 75 for one a request "
            "(its client's retry, the completer) is working on right now: run it again once "
            "that try is over. A request that never got past 'started' sent nothing: its key is "
            "dropped, as the completer drops it. Exits 0 when the request finished (or was "
            "dropped), 1 when it is still held (the failure is printed and recorded); --json "
            'prints {"outcome": "finished" | "still_held" | "dropped", "held_request": null or '
            "the request as list --json shows it, without age_seconds}."
        ),
    )
    retry.add_argument("account", metavar="ACCOUNT", help="the acct_ id")
    retry.add_argument("key", metavar="KEY", help="the idempotency key, as list shows it")
    retry.add_argument("--json", action="store_true", help="print one JSON object")
    for action in (listed, retry):
        _add_platform_flags(action)


def _add_job_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    from remit.worker.failed_job_bounds import DEFAULT_LIMIT, MAX_LIMIT

    jobs = commands.add_parser("jobs", help="inspect the worker's jobs")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    failed = actions.add_parser(
        "failed",
        help="the jobs that failed for good, the latest first",
        description=(
            "List the worker's jobs that failed for good (their attempts ran out), the latest "
            "to fail first: when it failed (UTC), the job's id, kind, attempts used of those "
            "allowed and account, and below it the first line of its last error. Never the "
            "job's payload. Failed jobs are deleted 30 days after they failed, done ones 7 "
            "days after they finished. It reads the core database itself, so it works with "
            "or without a running platform, and changes nothing: a core database not migrated "
            "to this version (remit migrate) is refused. Exits 1 when it lists any job, 0 "
            "when none, 2 on refused input or a schema not at this version's, 75 when the "
            "database was out of reach."
        ),
    )
    failed.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many jobs, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
    )
    _add_platform_flags(failed)


def _add_card_fingerprint_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    group = commands.add_parser(
        "card-fingerprints", help="the core's copies of card fingerprints (vault migration 0010)"
    )
    actions = group.add_subparsers(dest="card_fingerprints_command", required=True)
    convert = actions.add_parser(
        "convert",
        help="give payment methods, tokens, charges, Radar lists and rules each account's own "
        "fingerprints now",
        description=(
            "Since vault migration 0010 a card's fingerprint is its account's own; the payment "
            "methods and tokens made before the vault re-sealed their card hold the fingerprint "
            "every account shared, as do the Radar card_fingerprint list items, velocity "
            "counters and rules naming it. The worker converts them every ten minutes; this "
            "runs one pass now: it asks the vault about each payment method and token not yet "
            "known to hold its account's fingerprint (the vault answers from the card's number, "
            "which never leaves it), rewrites those whose fingerprint was replaced, the "
            "fingerprint their charges show, and the account's Radar list items, counters and "
            "rules of the old one, in batches of 500. "
            "It reads the core database itself and calls the vault: a core database not migrated "
            "to this version (remit migrate) is refused. Safe to run again, or beside the "
            "worker. Prints counts only. Exits 0 when every payment method and token holds "
            "its account's fingerprint, 1 when some are left: cards the vault has not "
            "re-sealed yet (run remit vault reseal-cards first), but also, on every run, cards "
            "it cannot answer for (deleted before their re-seal, or not opening) and cards "
            "under a key version lost or missing from the key file, which the re-seal cannot "
            "open (put a missing version back; a lost one leaves them as they are); 2 on a "
            "schema not at this version's or a call the vault refused, 75 when the database or "
            "the vault was out of reach."
        ),
    )
    _add_platform_flags(convert)


def _add_balance_release_failure_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> None:
    from remit.ledger.release_failure_bounds import DEFAULT_LIMIT, MAX_LIMIT

    group = commands.add_parser(
        "balance-release-failures",
        help="the due funds the release job set aside, and retrying one",
        description=(
            "Due funds whose move to the available balance the database refused for its "
            "values (a balance that would pass a bigint's range) are set aside by the release "
            "job: recorded once, and not tried again by it. Both commands read the core "
            "database itself, with or without a running platform, and never change its schema: "
            "a core database not migrated to this version (remit migrate) is refused."
        ),
    )
    actions = group.add_subparsers(dest="balance_release_failures_command", required=True)
    listed = actions.add_parser(
        "list",
        help="the set-aside releases, the latest first",
        description=(
            "List the set-aside releases, the latest set aside first: when (UTC), the balance "
            "transaction, its account, its net amount (minor units) and currency, and below "
            "it when it was due and the database's refusal. Changes nothing. Exits 1 when it "
            "lists any, 0 when none, 2 on refused input or a schema not at this version's, 75 "
            "when the database was out of reach."
        ),
    )
    listed.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"how many, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})",
    )
    retry = actions.add_parser(
        "retry",
        help="move one set-aside release's funds now, as the release job would",
        description=(
            "Once room is made (the balance paid out, say), make the funds of balance "
            "transaction ID available now, as the release job would, and record the "
            "account's balance.available event; the set-aside row goes with it. Safe beside "
            "running workers and run twice: funds already available are left as they are. "
            "Exits 0 when the funds are available (now or already) or ID is not set aside, 1 "
            "when the database refused the move again (the refusal is printed and recorded), "
            "2 for an unknown ID, 75 when a worker held its locks for over 5 s or the "
            "database was out of reach (run it again)."
        ),
    )
    retry.add_argument("id", metavar="ID", help="the balance transaction's id (txn_...)")
    for action in (listed, retry):
        _add_platform_flags(action)


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
    endpoints = actions.add_parser(
        "endpoints",
        help="list the account's endpoints: id, status (why, when disabled), URL",
    )
    resend = actions.add_parser("resend", help="deliver one event to one endpoint again, now")
    resend.add_argument("event", help="evt_ id")
    resend.add_argument("--endpoint", required=True, help="we_ id")
    redeliver = actions.add_parser(
        "redeliver",
        help="queue again every event not delivered to an endpoint: failed, or recorded while "
        "it was disabled",
    )
    redeliver.add_argument("endpoint", help="we_ id")
    redeliver.add_argument(
        "--since", help="only events created at or after this time (at most 30 days ago)"
    )
    roll = actions.add_parser("roll-secret", help="issue a new signing secret for an endpoint")
    roll.add_argument("endpoint", help="we_ id")
    roll.add_argument(
        "--expire-old-after",
        type=int,
        help="seconds the old secret keeps signing (default 86400)",
    )
    for action in (endpoints, resend, redeliver, roll):
        _add_platform_flags(action)
        action.add_argument("--api-key", help=key_help)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names; its exit code (`remit.command_exits` for admin commands).
    The logging it sets up for the command is taken down when it returns.

    It is the `remit` console script: a traceback nothing caught, here (`remit serve`'s
    supervisor, an admin command) or in any thread, is masked as the log is from the start. The
    hook stays after it returns, for an exception that escapes it."""
    install_masked_excepthook()
    with configuration_kept():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    command = command_name(args)
    if args.command == "versions":
        return run_reporting_failures(command, lambda: _versions(args.versions_command))
    try:
        if args.command in ("serve", "acquirer"):
            _apply_fault_flags(args)
        config = _config_from(args)
    except ConfigError as error:
        return refused(command, str(error))
    is_vault_admin = args.command == "vault" and args.vault_command is not None
    if args.command in PROCESS_ROLES and not is_vault_admin:
        from remit.bootstrap import run_process

        return run_process(args.command, config)
    configure_logging(args.command)
    # The commands administer the platform; `remit serve` hands each of its processes its own
    # role instead (`remit.config.environment_for`).
    config = config.acting_as(ADMIN)
    if args.command == "serve":
        return _serve(config)
    return run_reporting_failures(command, lambda: _run_command(args, config))


def _serve(config: PlatformConfig) -> int:
    """Supervises the platform's processes and reports their failures itself."""
    from remit.serve import EXIT_PROCESS_FAILED, serve

    try:
        return serve(config)
    except ConfigError as error:
        return refused("serve", str(error))
    except Exception as error:
        # A failure `serve` did not put into words: still one line, as every failure to
        # start is (README); its traceback, which may quote SQL and values, at DEBUG only.
        log.debug("remit serve failed", exc_info=error)
        print(
            f"remit serve: failed ({summary(error)}); REMIT_LOG_LEVEL=DEBUG logs the traceback",
            file=sys.stderr,
        )
        return EXIT_PROCESS_FAILED


def _run_command(args: argparse.Namespace, config: PlatformConfig) -> int:
    """Run an admin command: its failures are raised for `main` to report (a `CommandRefusedError`,
    a `ConfigError`, anything else as the command's own failure)."""
    if args.command == "migrate":
        return _migrate(config)
    if args.command == "settlement-report":
        from remit.acquirer.report_command import settlement_report_command

        return settlement_report_command(
            config,
            raw_date=args.date,
            output_format=args.format,
            merchant_id=args.merchant,
            output_path=args.output,
            allow_partial=args.allow_partial,
        )
    if args.command in ("listen", "trigger", "webhooks"):
        return _webhook_command(args, config)

    if args.command == "ledger" and args.ledger_command == "verify":
        from remit.ledger.cli import verify_command

        return verify_command(config, account_id=args.account, checkpoints=args.checkpoints)
    if args.command == "ledger" and args.ledger_command == "checkpoint":
        from remit.ledger.cli import checkpoint_command

        return checkpoint_command(config, account_id=args.account, file=args.file)
    if args.command == "reconcile":
        from remit.ledger.cli import reconcile_command

        return reconcile_command(
            config, day=args.date, account_id=args.account, allow_partial=args.allow_partial
        )
    if args.command == "reconciliations":
        from remit.ledger.reconciliations_command import reconciliations_command

        return reconciliations_command(config, limit=args.limit, as_json=args.json, out=sys.stdout)

    if args.command == "held-requests":
        return _held_requests_command(args, config)
    if args.command == "jobs" and args.jobs_command == "failed":
        from remit.worker.failed_jobs import failed_jobs_command

        return failed_jobs_command(config, limit=args.limit, out=sys.stdout)
    if args.command == "balance-release-failures":
        from remit.ledger import release_failures_command as release_failures

        if args.balance_release_failures_command == "list":
            return release_failures.list_command(config, limit=args.limit, out=sys.stdout)
        return release_failures.retry_command(config, txn_id=args.id, out=sys.stdout)
    if args.command == "card-fingerprints":
        from remit.payment_methods.fingerprints_command import convert_fingerprints_command

        return convert_fingerprints_command(config, out=sys.stdout)
    if args.command == "radar":
        return _radar_command(args, config)
    if args.command == "accounts" and args.accounts_command == "create":
        from remit.accounts.command_keys import command_idempotency_key
        from remit.accounts.create_command import create_account_command

        return create_account_command(
            config,
            raw_card_access=args.raw_card_access,
            currency=args.currency,
            idempotency_key=command_idempotency_key(args.idempotency_key),
            as_json=args.json,
            out=sys.stdout,
        )
    if args.command == "accounts" and args.accounts_command == "upgrade":
        return _upgrade_account(config, args.account, args.version)
    if args.command == "accounts" and args.accounts_command == "keys":
        from remit.accounts.key_commands import run_key_command

        return run_key_command(config, args, sys.stdout)
    if args.command == "vault":
        return _vault(config, args)
    raise CommandRefusedError(f"unknown command {command_name(args)!r}")


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

    from remit.grpcutil.call_failures import call_failed
    from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
    from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc

    with internal_sync_channel(config.core.target, InternalAccess.of(config)) as channel:
        try:
            reply = accounts_pb2_grpc.AccountsServiceStub(channel).UpgradeApiVersion(
                accounts_pb2.UpgradeApiVersionRequest(account_id=account_id, api_version=version),
                timeout=10,
            )
        except grpc.RpcError as error:
            raise call_failed(error, "core", config.core.target) from None
    previous = reply.previous_api_version if reply.HasField("previous_api_version") else "none"
    print(f"{account_id}: {previous} -> {reply.api_version}")
    return 0


def _vault(config: PlatformConfig, args: argparse.Namespace) -> int:
    from remit.vault.admin import run_admin
    from remit.vault.audit_arguments import AuditQuery

    audit = None
    if args.vault_command == "audit":
        audit = AuditQuery(
            limit=args.limit,
            starting_after=args.starting_after,
            account=args.account,
            token=args.token,
            requester=args.requester,
            action=args.action,
            since=args.since,
            before=args.before,
        )
    lines = run_admin(
        config,
        args.vault_command,
        wait=getattr(args, "wait", False),
        minimum=getattr(args, "minimum_version", 0) or 0,
        version=getattr(args, "version", 0) or 0,
        operator=getattr(args, "operator", None) or "",
        audit=audit,
    )
    for line in lines:
        print(line)
    return 0


def _webhook_command(args: argparse.Namespace, config: PlatformConfig) -> int:
    from remit.webhooks import tools

    key = tools.api_key_for(config, args.api_key)
    since = tools.parse_since(args.since) if getattr(args, "since", None) else None
    if args.command == "listen":
        types = [t.strip() for t in args.events.split(",") if t.strip()]
        listen = tools.listen(config, api_key=key, forward_to=args.forward_to, types=types)
        return tools.run_until_stopped(listen, config)
    if args.command == "trigger":
        return tools.run(tools.trigger(config, api_key=key, event_type=args.event), config)
    out = sys.stdout
    if args.webhooks_command == "endpoints":
        return tools.run(tools.list_endpoints(config, api_key=key, out=out), config)
    if args.webhooks_command == "resend":
        resend = tools.resend(config, api_key=key, event_id=args.event,
                              endpoint_id=args.endpoint, out=out)  # fmt: skip
        return tools.run(resend, config)
    if args.webhooks_command == "redeliver":
        redeliver = tools.redeliver(config, api_key=key, endpoint_id=args.endpoint,
                                    since=since, out=out)  # fmt: skip
        return tools.run(redeliver, config)
    roll = tools.roll_secret(
        config, api_key=key, endpoint_id=args.endpoint,
        expire_old_after_s=args.expire_old_after, out=out,
    )  # fmt: skip
    return tools.run(roll, config)


def _held_requests_command(args: argparse.Namespace, config: PlatformConfig) -> int:
    from remit.payments.held_requests_command import list_command, retry_command

    if args.held_requests_command == "list":
        return list_command(
            config,
            older_than_minutes=args.older_than,
            account_id=args.account,
            limit=args.limit,
            as_json=args.json,
            out=sys.stdout,
        )
    return retry_command(
        config, account_id=args.account, key=args.key, as_json=args.json, out=sys.stdout
    )


def _radar_command(args: argparse.Namespace, config: PlatformConfig) -> int:
    from remit.radar.tools import run_command
    from remit.webhooks import tools

    key = tools.api_key_for(config, args.api_key)
    return tools.run(run_command(config, args, key, sys.stdout), config)


def _migrate(config: PlatformConfig) -> int:
    from remit.databases import MigrationFailedError, migrate_all, resolve_databases
    from remit.storage.migration_locks import MigrationLockTimeoutError
    from remit.storage.migration_stops import MigrationStoppedError

    resolved = resolve_databases(config)
    try:
        left_alone = migrate_all(resolved.config)
    except MigrationLockTimeoutError as error:
        # Another transaction held a lock through every attempt: the message names it, and
        # the same command may pass once it has ended.
        raise CommandTemporaryFailureError(str(error)) from error
    except MigrationStoppedError as error:
        # It needs an operator's decision, which its message asks for: run unchanged, it
        # stops the same way, so it is a refusal, not a failure to retry.
        raise CommandRefusedError(str(error)) from error
    except MigrationFailedError as error:
        # Its message names the database and the failure; the traceback is kept for DEBUG.
        raise CommandFailedError(str(error)) from error
    finally:
        resolved.stop_embedded()
    # A database a newer remit migrated is no failure: this version runs on it.
    for note in left_alone:
        print(note)
    print("migrations applied")
    return 0
