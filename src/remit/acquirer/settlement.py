"""A day's settlement report rendered for people and scripts (`remit settlement-report`)."""

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, date

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
)


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
    }


def render_csv(rows: Sequence[SettlementRow]) -> str:
    """A header line, then one line per row; amounts and fees in minor units."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_record(row))
    return out.getvalue()


def render_json(day: date, rows: Sequence[SettlementRow]) -> str:
    return json.dumps({"date": day.isoformat(), "rows": [_record(row) for row in rows]}, indent=2)
