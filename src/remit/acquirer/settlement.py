"""A day's settlement report rendered for people and scripts (`remit settlement-report`).

Rows are written as they are read, a page at a time, and the report ends with its own count
and totals, so a reader can tell a complete report from one cut short at a line boundary:

- CSV: a header line, one line per row, then the trailer, the last line:
  `# end date=D [merchant_id=M] [partial=true] rows=N`, then for each currency, in alphabetical
  order, `CUR.rows=N CUR.amount=SUM CUR.fee=SUM CUR.released=SUM` (the sums of the amount,
  fee and released columns, in minor units). `merchant_id` is there when the report is one
  merchant's; `partial=true` when the day was not over (UTC) as it was written, so that more
  may settle on it. A row starts with its settled_at timestamp, never with `#`, so CSV readers
  can skip the trailer as a comment. A report without it, or whose rows disagree with it, was
  cut short.
- JSON: an object with `date`, `merchant_id` (null for every merchant's), `partial`, `rows`
  (each with the columns of the CSV, `merchant_id` among them), then `row_count` and `totals`
  (per currency: `rows`, `amount`, `fee`, `released`); a report cut short is not valid JSON.

`released` is what a capture gave back to the cardholder of its authorization uncaptured: the
remainder of a partial capture, 0 when the authorization was captured in full (0 on refunds).
It moved no money, so it is not part of `amount`. An authorization's amount is the sum of its
captures' amounts plus the released of the capture that closed it (voids, which settle
nothing, release what no capture took).
"""

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Protocol, TextIO

from remit.acquirer.domain import SettlementRow

COLUMNS = (
    "settled_at",
    "kind",
    "reference",
    "authorization_id",
    "operation_id",
    "merchant_id",
    "currency",
    "amount",
    "fee",
    "released",
)
TRAILER_PREFIX = "# end"


def _record(row: SettlementRow) -> dict[str, str | int]:
    return {
        "settled_at": row.settled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "kind": row.kind.value,
        "reference": row.reference,
        "authorization_id": row.authorization_id,
        "operation_id": row.operation_id,
        "merchant_id": row.merchant_id,
        "currency": row.currency,
        "amount": row.amount_minor,
        "fee": row.fee_minor,
        "released": row.released_minor,
    }


@dataclass
class CurrencyTotal:
    rows: int = 0
    amount: int = 0
    fee: int = 0
    released: int = 0


@dataclass
class Totals:
    """What the rows written so far add up to."""

    rows: int = 0
    by_currency: dict[str, CurrencyTotal] = field(default_factory=dict)

    def add(self, row: SettlementRow) -> None:
        self.rows += 1
        total = self.by_currency.setdefault(row.currency, CurrencyTotal())
        total.rows += 1
        total.amount += row.amount_minor
        total.fee += row.fee_minor
        total.released += row.released_minor

    def currencies(self) -> list[tuple[str, CurrencyTotal]]:
        return sorted(self.by_currency.items())


class ReportWriter(Protocol):
    def start(self) -> None: ...

    def write(self, rows: Sequence[SettlementRow]) -> None: ...

    def finish(self) -> None: ...


class CsvReport:
    def __init__(
        self, out: TextIO, day: date, merchant_id: str | None = None, *, partial: bool = False
    ) -> None:
        self._out = out
        self._day = day
        self._merchant_id = merchant_id
        self._partial = partial
        self._writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        self.totals = Totals()

    def start(self) -> None:
        self._writer.writeheader()

    def write(self, rows: Sequence[SettlementRow]) -> None:
        for row in rows:
            self._writer.writerow(_record(row))
            self.totals.add(row)

    def finish(self) -> None:
        fields = [TRAILER_PREFIX, f"date={self._day.isoformat()}"]
        if self._merchant_id is not None:
            fields.append(f"merchant_id={self._merchant_id}")
        if self._partial:
            fields.append("partial=true")
        fields.append(f"rows={self.totals.rows}")
        for currency, total in self.totals.currencies():
            fields += [
                f"{currency}.rows={total.rows}",
                f"{currency}.amount={total.amount}",
                f"{currency}.fee={total.fee}",
                f"{currency}.released={total.released}",
            ]
        self._out.write(" ".join(fields) + "\n")


class JsonReport:
    def __init__(
        self, out: TextIO, day: date, merchant_id: str | None = None, *, partial: bool = False
    ) -> None:
        self._out = out
        self._day = day
        self._merchant_id = merchant_id
        self._partial = partial
        self.totals = Totals()

    def start(self) -> None:
        # What the CSV trailer says of the report, said up front: it is known before any row.
        self._out.write(
            f'{{\n  "date": {json.dumps(self._day.isoformat())},\n'
            f'  "merchant_id": {json.dumps(self._merchant_id)},\n'
            f'  "partial": {json.dumps(self._partial)},\n  "rows": ['
        )

    def write(self, rows: Sequence[SettlementRow]) -> None:
        for row in rows:
            separator = "," if self.totals.rows else ""
            self._out.write(f"{separator}\n    {json.dumps(_record(row))}")
            self.totals.add(row)

    def finish(self) -> None:
        totals = {
            currency: {
                "rows": total.rows,
                "amount": total.amount,
                "fee": total.fee,
                "released": total.released,
            }
            for currency, total in self.totals.currencies()
        }
        closing = "\n  ]" if self.totals.rows else "]"
        self._out.write(
            f'{closing},\n  "row_count": {self.totals.rows},\n'
            f'  "totals": {json.dumps(totals)}\n}}\n'
        )
