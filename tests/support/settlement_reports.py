"""A settlement report rendered whole, as `remit settlement-report` writes it page by page."""

import io
from collections.abc import Sequence
from datetime import date

from remit.acquirer.domain import SettlementRow
from remit.acquirer.settlement import CsvReport, JsonReport, ReportWriter


def _rendered(report: ReportWriter, out: io.StringIO, rows: Sequence[SettlementRow]) -> str:
    report.start()
    report.write(rows)
    report.finish()
    return out.getvalue()


def render_csv(
    day: date,
    rows: Sequence[SettlementRow],
    merchant_id: str | None = None,
    *,
    partial: bool = False,
) -> str:
    """A header line, one line per row (amounts and fees in minor units), the trailer."""
    out = io.StringIO()
    return _rendered(CsvReport(out, day, merchant_id, partial=partial), out, rows)


def render_json(
    day: date,
    rows: Sequence[SettlementRow],
    merchant_id: str | None = None,
    *,
    partial: bool = False,
) -> str:
    out = io.StringIO()
    return _rendered(JsonReport(out, day, merchant_id, partial=partial), out, rows)
