"""`remit ledger verify`, `remit ledger checkpoint` and `remit reconcile`: run in-process against
the core database (and, for reconciliation, the acquirer's gRPC endpoint), so they work with or
without a running core. None changes the schema: each refuses (exit 2) a core database whose
schema is not already at this version's head, so that a newer remit run against production never
migrates it on the way (`remit migrate` does that, when the operator means it); `verify`, an
audit, and `checkpoint` change nothing in the database at all. Exit codes:
`remit.command_exits`."""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from remit.command_exits import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    refused,
    report_failure,
    temporary_failure,
)
from remit.config import (
    LEDGER_CHECKPOINT_FILE_ENV,
    LEDGER_CHECKPOINT_KEY_ENV,
    LEDGER_CHECKPOINT_KEY_FILE_ENV,
    LEDGER_CHECKPOINT_PREVIOUS_KEYS_ENV,
    LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV,
    ConfigError,
    PlatformConfig,
    ledger_checkpoint_file,
    ledger_checkpoint_interval_s,
    ledger_checkpoint_key,
    ledger_checkpoint_previous_keys,
)
from remit.core.errors import RemitError
from remit.core.secrets import Secret
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.ledger.anchoring import CheckpointFile, CheckpointReport
from remit.ledger.checkpoints import CheckpointKeys, RetiredKey, key_id
from remit.ledger.reconcile import Reconciliation, render_table
from remit.ledger.service import LedgerService
from remit.ledger.verify import VerifyReport
from remit.storage.database_clock import command_clock
from remit_api.acquirer.v1 import acquirer_pb2_grpc

T = TypeVar("T")


def _with_service(
    config: PlatformConfig,
    use: Callable[[LedgerService], Awaitable[T]],
    *,
    command: str,
) -> T:
    """Run `use` against the core database, refused unless its schema is already at this
    version's head."""
    from remit.databases import require_at_head, resolve_databases
    from remit.storage.connecting import LONG_KEEPALIVES
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import core_database

    # The acquirer is called over gRPC: only the core's database is opened.
    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], command)
        url = database.url

        async def run() -> T:
            # Verifying or reconciling a whole ledger may hold a statement for long: a short
            # loss of the network should not fail it.
            engine = make_engine(url, pool_size=2, keepalives=LONG_KEEPALIVES)
            channel = internal_channel(config.acquirer.target, InternalAccess.of(config))
            try:
                # The day it reconciles must be over, and its run is stamped, by the clock the
                # core's Reconcile call goes by, the database's, not this host's.
                clock = await command_clock(engine)
                service = LedgerService(
                    engine, clock, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
                )
                return await use(service)
            finally:
                await channel.close()
                await dispose(engine)

        return asyncio.run(run())
    finally:
        resolved.stop_embedded()


def render_verify(report: VerifyReport) -> str:
    lines = [
        f"checked {report.transactions_checked} ledger transactions: "
        # The ledger against itself; the checkpoints say their own below.
        + ("DIFFERENCES FOUND" if report.differences or report.chain_breaks else "OK")
    ]
    for difference in report.differences:
        where = difference.transaction_id or difference.ledger_account or ""
        lines.append(
            f"  {difference.kind.value:<30} {difference.account_id} {where} "
            f"{difference.currency}: {difference.description}"
        )
    for chain_break in report.chain_breaks:
        lines.append(
            f"  {'chain_break':<30} {chain_break.account_id} sequence {chain_break.sequence} "
            f"{chain_break.transaction_id or '(chain head)'}: "
            f"stored {chain_break.actual_hash[:16]} recomputed {chain_break.expected_hash[:16]}"
        )
    if report.checkpoints is not None:
        lines += _render_checkpoints(report.checkpoints)
    return "\n".join(lines)


def _render_checkpoints(report: CheckpointReport) -> list[str]:
    findings = []
    if not report.checked:
        findings.append(
            "no checkpoint to check: the file holds none (of the account's, with --account)"
        )
    if report.disagreeing:
        findings.append(f"the database no longer agrees with {report.disagreeing}")
    if report.unreadable:
        findings.append(f"{report.unreadable} lines fail their HMAC or are malformed")
    if report.unknown_key:
        findings.append(f"{report.unknown_key} lines were written under keys not given")
    if report.after_retirement:
        findings.append(
            f"{report.after_retirement} lines were signed by a retired key after its retirement"
        )
    if report.out_of_order:
        findings.append(f"{report.out_of_order} lines are out of order")
    lines = [
        f"checked {report.checked} checkpoints of {report.path}: "
        + ("CHECKPOINTS FAILED: " + "; ".join(findings) if findings else "OK")
        # No failure (`IncompleteLine` says why), but never passed over in silence.
        + (f" ({report.incomplete} lines incomplete)" if report.incomplete else "")
    ]
    if report.disagreements:
        first = report.disagreements[0]
        checkpoint = first.line.checkpoint
        lines.append(
            f"  first checkpoint the database no longer agrees with: line {first.line.number}, "
            f"{checkpoint.account_id} sequence {checkpoint.sequence} at "
            f"{checkpoint.at.isoformat()}: {first.found}"
        )
    for disagreement in report.disagreements[1:]:
        checkpoint = disagreement.line.checkpoint
        lines.append(
            f"  {'checkpoint_disagrees':<30} line {disagreement.line.number} "
            f"{checkpoint.account_id} sequence {checkpoint.sequence}: {disagreement.found}"
        )
    for unreadable in report.unreadable_lines:
        lines.append(
            f"  {'checkpoint_unreadable':<30} line {unreadable.number}: {unreadable.reason}"
        )
    for unknown in report.unknown_key_lines:
        lines.append(f"  {'checkpoint_key_unknown':<30} line {unknown.number}: {unknown.reason}")
    for retired in report.after_retirement_lines:
        lines.append(f"  {'checkpoint_key_retired':<30} line {retired.number}: {retired.reason}")
    for misplaced in report.out_of_order_lines:
        lines.append(
            f"  {'checkpoint_out_of_order':<30} line {misplaced.number}: {misplaced.reason}"
        )
    for incomplete in report.incomplete_lines:
        lines.append(
            f"  {'checkpoint_incomplete':<30} line {incomplete.number}: {incomplete.reason}"
        )
    if report.unknown_keys:
        counts = ", ".join(f"{key} ({count} lines)" for key, count in report.unknown_keys.items())
        lines.append(
            f"  keys not given: {counts}; give earlier keys as KEY@RETIRED_AT in "
            f"{LEDGER_CHECKPOINT_PREVIOUS_KEYS_ENV} or {LEDGER_CHECKPOINT_PREVIOUS_KEYS_FILE_ENV}"
        )
    for retired_id, count in report.checked_under_retired.items():
        lines.append(f"  checked under earlier key {retired_id}: {count} checkpoints")
    if report.unanchored_shown:
        accounts = ", ".join(
            f"{account} (since {since.isoformat()})" for account, since in report.unanchored_shown
        )
        more = report.unanchored_accounts - len(report.unanchored_shown)
        lines.append(
            f"  warning: {report.unanchored_accounts} accounts have a transaction no checkpoint "
            f"of the account is newer than: {accounts}"
            + (f" and {more} more" if more > 0 else "")
            + ", though the worker writes them every REMIT_LEDGER_CHECKPOINT_INTERVAL_S: is it "
            "writing them, or were the file's lines cut?"
        )
    shown = len(report.disagreements) + len(report.unreadable_lines)
    shown += len(report.unknown_key_lines) + len(report.incomplete_lines)
    shown += len(report.after_retirement_lines) + len(report.out_of_order_lines)
    found = report.disagreeing + report.unreadable + report.unknown_key + report.incomplete
    found += report.after_retirement + report.out_of_order
    if found > shown:
        lines.append(f"  ... and {found - shown} more")
    return lines


def _checkpoint_key(command: str) -> Secret[bytes]:
    key = ledger_checkpoint_key()
    if key is None:
        raise ConfigError(
            f"remit {command} needs the checkpoints' key: set {LEDGER_CHECKPOINT_KEY_ENV} or "
            f"{LEDGER_CHECKPOINT_KEY_FILE_ENV}"
        )
    return key


def verify_command(
    config: PlatformConfig, *, account_id: str | None, checkpoints: Path | None = None
) -> int:
    command = "ledger verify"
    anchors = None
    if checkpoints is not None:
        previous = tuple(
            RetiredKey(key, retired_at) for key, retired_at in ledger_checkpoint_previous_keys()
        )
        keys = CheckpointKeys(_checkpoint_key(command), previous)
        anchors = CheckpointFile(checkpoints, keys, ledger_checkpoint_interval_s())
        if not checkpoints.is_file():
            return refused(command, f"checkpoint file {checkpoints} does not exist")

    def show(report: VerifyReport) -> int:
        print(render_verify(report))
        return EXIT_CLEAN if report.ok else EXIT_FINDINGS

    return _run(
        config,
        command,
        lambda service: service.verify(account_id, checkpoints=anchors),
        show,
    )


def checkpoint_command(
    config: PlatformConfig, *, account_id: str | None, file: Path | None = None
) -> int:
    command = "ledger checkpoint"
    path = file or ledger_checkpoint_file()
    if path is None:
        return refused(
            command, f"no checkpoint file: give --file or set {LEDGER_CHECKPOINT_FILE_ENV}"
        )
    key = _checkpoint_key(command)
    if not path.parent.is_dir() or path.is_dir():
        return refused(command, f"cannot append to {path}: not a file in an existing directory")

    def show(written: int) -> int:
        # The key's id, as the lines name it: what an operator matches keys against.
        print(f"appended {written} checkpoints to {path} under key {key_id(key)}")
        return EXIT_CLEAN

    return _run(
        config,
        command,
        lambda service: service.checkpoint(path, key, account_id),
        show,
    )


def reconcile_command(
    config: PlatformConfig, *, day: str, account_id: str | None, allow_partial: bool = False
) -> int:
    def show(result: Reconciliation) -> int:
        print(render_table(result))
        return EXIT_CLEAN if result.ok else EXIT_FINDINGS

    return _run(
        config,
        "reconcile",
        lambda service: service.reconcile(day, account_id, allow_partial=allow_partial),
        show,
    )


def _run(
    config: PlatformConfig,
    command: str,
    use: Callable[[LedgerService], Awaitable[T]],
    show: Callable[[T], int],
) -> int:
    """Show what `use` returns, or report its failure: a RemitError is refused input or the
    acquirer's failure (a temporary one when it says to retry: the acquirer out of reach);
    anything else is reported as `remit.command_exits` says (its database out of reach is
    temporary, a bug the command's own failure)."""
    try:
        found = _with_service(config, use, command=command)
    except RemitError as error:
        if error.should_retry:
            return temporary_failure(command, error.message)
        return refused(command, error.message)
    except ConfigError:
        raise  # refused input, reported by `remit.cli.main`
    except Exception as error:
        return report_failure(command, error)
    return show(found)
