"""A settlement report says how many rows it holds, even when it holds none, and what it covers:
whose rows, and whether the day was over."""

import json
from datetime import UTC, date, datetime

from remit.acquirer.domain import SettlementKind, SettlementRow
from tests.support.settlement_reports import render_csv, render_json

DAY = date(2031, 3, 14)
MERCHANT = "acct_1A"


def _row(reference: str, amount: int) -> SettlementRow:
    return SettlementRow(
        kind=SettlementKind.CAPTURE,
        reference=reference,
        authorization_id=f"auth_{reference}",
        operation_id=f"op_{reference}",
        amount_minor=amount,
        currency="usd",
        fee_minor=amount // 100,
        settled_at=datetime(2031, 3, 14, 12, tzinfo=UTC),
        merchant_id=MERCHANT,
    )


def test_an_empty_day_still_ends_with_its_trailer() -> None:
    assert render_csv(DAY, []).splitlines() == [
        "settled_at,kind,reference,authorization_id,operation_id,merchant_id,currency,amount,fee",
        "# end date=2031-03-14 rows=0",
    ]
    assert render_csv(DAY, [], MERCHANT).splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A rows=0"
    )
    assert json.loads(render_json(DAY, [])) == {
        "date": "2031-03-14",
        "merchant_id": None,
        "partial": False,
        "rows": [],
        "row_count": 0,
        "totals": {},
    }


def test_the_json_report_says_whose_it_is_as_the_csv_trailer_does() -> None:
    rows = [_row("sale-1", 1000), _row("sale-2", 2500)]
    document = json.loads(render_json(DAY, rows, MERCHANT))
    assert document["merchant_id"] == MERCHANT
    assert [row["merchant_id"] for row in document["rows"]] == [MERCHANT, MERCHANT]
    assert document["totals"] == {"usd": {"rows": 2, "amount": 3500, "fee": 35}}
    assert render_csv(DAY, rows, MERCHANT).splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A rows=2 usd.rows=2 usd.amount=3500 usd.fee=35"
    )


def test_a_partial_report_says_so_in_both_forms() -> None:
    rows = [_row("sale-1", 1000)]
    assert render_csv(DAY, rows, MERCHANT, partial=True).splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A partial=true rows=1 usd.rows=1 "
        "usd.amount=1000 usd.fee=10"
    )
    assert (
        render_csv(DAY, rows, partial=True)
        .splitlines()[-1]
        .startswith("# end date=2031-03-14 partial=true rows=1 ")
    )
    assert json.loads(render_json(DAY, rows, partial=True))["partial"] is True
