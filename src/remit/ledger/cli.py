"""`remit ledger verify` and `remit reconcile`: run in-process against the core database (and,
for reconciliation, the acquirer's gRPC endpoint), so they work with or without a running core.
Neither changes the schema: each refuses (exit 2) a core database whose schema is not already
at this version's head, so that a newer remit run against production never migrates it on the
way (`remit migrate` does that, when the operator means it). Exit codes:
`remit.command_exits`."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from remit.command_exits import (
    EXIT_CLEAN,
    EXIT_FINDINGS,
    refused,
    report_failure,
    temporary_failure,
)
from remit.config import ConfigError, PlatformConfig
from remit.core.errors import RemitError
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.ledger.reconcile import Reconciliation, render_table
from remit.ledger.service import LedgerService
from remit.ledger.verify import VerifyReport
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
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import core_database

    # The acquirer is called over gRPC: only the core's database is opened.
    resolved = resolve_databases(config, needed=("core",))
    try:
        database = core_database(resolved.config)
        require_at_head([database], command)
        url = database.url

        async def run() -> T:
            engine = make_engine(url, pool_size=2)
            channel = internal_channel(config.acquirer.target, InternalAccess.of(config))
            try:
                service = LedgerService(
                    engine, acquirer=acquirer_pb2_grpc.AcquirerServiceStub(channel)
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
        + ("OK" if report.ok else "DIFFERENCES FOUND")
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
    return "\n".join(lines)


def verify_command(config: PlatformConfig, *, account_id: str | None) -> int:
    def show(report: VerifyReport) -> int:
        print(render_verify(report))
        return EXIT_CLEAN if report.ok else EXIT_FINDINGS

    return _run(config, "ledger verify", lambda service: service.verify(account_id), show)


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
