"""`remit settlement-report`: one UTC day of the simulated acquirer's settlement, read from its
database a page at a time, each in the snapshot of the first (`remit.acquirer.settlement_pages`:
what had committed when the report began, each row once), and written as it is read, to stdout
or, with `--output`, to a file that appears only once complete (`remit.core.atomic_file`). The
days it takes are those `remit reconcile` takes (`remit.core.settlement_days`): over, or not
over with `--allow-partial`, and then the report says it is partial. Which days are over is told
by the acquirer database's clock, the one that stamps the operations, never this host's
(`remit.acquirer.settlement_clock`): a day is over only once the operations it stamped have all
committed, a grace after midnight that follows from the acquirer's settings, as it recorded
them when it started, not only this shell's (`report_grace`). An acquirer database not
at this version's schema head is refused (exit 2), never migrated. Exit codes:
`remit.command_exits`.
"""

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from remit.acquirer.service import AcquirerService, ReportDay
from remit.acquirer.settlement import CsvReport, JsonReport, ReportWriter
from remit.acquirer.settlement_pages import MAX_PAGE_SIZE, SettlementCursor
from remit.command_exits import EXIT_CLEAN, refused, report_failure
from remit.config import ConfigError, PlatformConfig
from remit.core.atomic_file import AtomicFile
from remit.core.clock import Clock
from remit.core.errors import RemitError
from remit.core.settlement_days import parse_day

COMMAND = "settlement-report"


class _RefusedError(Exception):
    """The command's input refused once the acquirer's clock is read: exit 2."""


def settlement_report_command(
    config: PlatformConfig,
    *,
    raw_date: str,
    output_format: str,
    merchant_id: str | None,
    output_path: str | None,
    allow_partial: bool = False,
    clock: Clock | None = None,
) -> int:
    """`clock`: a test's, instead of the acquirer database's."""
    try:
        parse_day(raw_date)  # a date misspelt is refused before anything is opened
    except RemitError as error:
        return refused(COMMAND, error.message)
    target: AtomicFile | None = None

    def start(report_day: ReportDay) -> ReportWriter:
        nonlocal target
        if output_path is not None:
            try:
                # Before anything is read: a path that cannot be written is refused at once.
                target = AtomicFile.create(Path(output_path))
            except OSError as error:
                raise _RefusedError(
                    f"cannot write {output_path}: {error.strerror or error}"
                ) from None
        out = sys.stdout if target is None else target.handle
        writer = JsonReport if output_format == "json" else CsvReport
        return writer(out, report_day.day, merchant_id, partial=report_day.partial)

    try:
        _write(config, raw_date, allow_partial, merchant_id, clock, start)
        if target is not None:
            target.commit()
        else:
            sys.stdout.flush()
    except BaseException as error:
        if target is not None:
            target.discard()
        if isinstance(error, _RefusedError):
            return refused(COMMAND, str(error))
        if isinstance(error, ConfigError) or not isinstance(error, Exception):
            raise  # a setting missing is refused input (`remit.cli.main`); Ctrl-C stays one
        return report_failure(COMMAND, error)
    return EXIT_CLEAN


def _write(
    config: PlatformConfig,
    raw_date: str,
    allow_partial: bool,
    merchant_id: str | None,
    clock: Clock | None,
    start: Callable[[ReportDay], ReportWriter],
) -> None:
    from remit.acquirer.settlement_clock import acquirer_clock, report_grace
    from remit.databases import require_at_head, resolve_databases
    from remit.storage.engine import dispose, make_engine
    from remit.storage.reachability import acquirer_database

    resolved = resolve_databases(config, needed=("acquirer",))
    try:
        database = acquirer_database(resolved.config)
        # A report changes nothing, the schema included: `remit migrate` upgrades it.
        require_at_head([database], COMMAND)
        url = database.url

        async def read() -> None:
            engine = make_engine(url, pool_size=1, application_name="remit-cli")
            try:
                service = AcquirerService(
                    engine,
                    clock or await acquirer_clock(engine),
                    # Not this shell's settings alone: the acquirer's transactions are bounded
                    # by its own.
                    grace=await report_grace(engine),
                )
                # A day not begun, or today, is refused (exit 2); one ended but within its
                # grace is to retry shortly (exit 75): `remit.command_exits.report_failure`.
                report_day = service.report_day(raw_date, allow_partial=allow_partial)
                report = start(report_day)
                report.start()
                after: SettlementCursor | None = None
                while True:
                    page = await service.settlement_page(
                        report_day.day, merchant_id, after=after, limit=MAX_PAGE_SIZE
                    )
                    report.write(page.rows)
                    if page.next is None:
                        break
                    after = page.next
                report.finish()
            finally:
                await dispose(engine)

        asyncio.run(read())
    finally:
        resolved.stop_embedded()
