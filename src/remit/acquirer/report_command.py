"""`remit settlement-report`: one UTC day of the simulated acquirer's settlement, read from its
database a page at a time, each in the snapshot of the first (`remit.acquirer.settlement_pages`:
what had committed when the report began, each row once), and written as it is read, to stdout
or, with `--output`, to a file that appears only once complete (`remit.core.atomic_file`). The
days it takes are those `remit reconcile` takes (`remit.core.settlement_days`): over in UTC, or
today with `--allow-partial`, and then the report says it is partial. An acquirer database not
at this version's schema head is refused (exit 2), never migrated. Exit codes:
`remit.command_exits`.
"""

import asyncio
import sys
from datetime import UTC, date
from pathlib import Path

from remit.acquirer.service import AcquirerService
from remit.acquirer.settlement import CsvReport, JsonReport, ReportWriter
from remit.acquirer.settlement_pages import MAX_PAGE_SIZE, SettlementCursor
from remit.command_exits import EXIT_CLEAN, refused, report_failure
from remit.config import ConfigError, PlatformConfig
from remit.core.atomic_file import AtomicFile
from remit.core.clock import Clock, SystemClock
from remit.core.errors import RemitError
from remit.core.settlement_days import is_partial, settlement_day

COMMAND = "settlement-report"


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
    today = (clock or SystemClock()).now().astimezone(UTC).date()
    try:
        day = settlement_day(raw_date, today=today, allow_partial=allow_partial)
    except RemitError as error:
        return refused(COMMAND, error.message)
    partial = is_partial(day, today=today)
    target: AtomicFile | None = None
    if output_path is not None:
        try:
            # Before anything is read: a path that cannot be written is refused at once.
            target = AtomicFile.create(Path(output_path))
        except OSError as error:
            return refused(COMMAND, f"cannot write {output_path}: {error.strerror or error}")
    try:
        out = sys.stdout if target is None else target.handle
        writer = JsonReport if output_format == "json" else CsvReport
        report: ReportWriter = writer(out, day, merchant_id, partial=partial)
        _write(config, day, merchant_id, report)
        if target is not None:
            target.commit()
        else:
            out.flush()
    except BaseException as error:
        if target is not None:
            target.discard()
        if isinstance(error, ConfigError) or not isinstance(error, Exception):
            raise  # a setting missing is refused input (`remit.cli.main`); Ctrl-C stays one
        return report_failure(COMMAND, error)
    return EXIT_CLEAN


def _write(
    config: PlatformConfig, day: date, merchant_id: str | None, report: ReportWriter
) -> None:
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
                service = AcquirerService(engine)
                report.start()
                after: SettlementCursor | None = None
                while True:
                    page = await service.settlement_page(
                        day, merchant_id, after=after, limit=MAX_PAGE_SIZE
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
