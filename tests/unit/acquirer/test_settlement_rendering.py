"""A settlement report says how many rows it holds, even when it holds none, and what it covers:
whose rows, and whether the day was over."""

import json
from datetime import UTC, date, datetime

from remit.acquirer.domain import SettlementKind, SettlementRow
from tests.support.settlement_reports import render_csv, render_json

DAY = date(2031, 3, 14)
MERCHANT = "acct_1A"


def _row(reference: str, amount: int, released: int = 0) -> SettlementRow:
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
        released_minor=released,
    )


def test_an_empty_day_still_ends_with_its_trailer() -> None:
    assert render_csv(DAY, []).splitlines() == [
        "settled_at,kind,reference,authorization_id,operation_id,merchant_id,currency,amount,fee,"
        "released",
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
    assert document["totals"] == {"usd": {"rows": 2, "amount": 3500, "fee": 35, "released": 0}}
    assert render_csv(DAY, rows, MERCHANT).splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A rows=2 usd.rows=2 usd.amount=3500 usd.fee=35 "
        "usd.released=0"
    )


def test_a_partial_report_says_so_in_both_forms() -> None:
    rows = [_row("sale-1", 1000)]
    assert render_csv(DAY, rows, MERCHANT, partial=True).splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A partial=true rows=1 usd.rows=1 "
        "usd.amount=1000 usd.fee=10 usd.released=0"
    )
    assert (
        render_csv(DAY, rows, partial=True)
        .splitlines()[-1]
        .startswith("# end date=2031-03-14 partial=true rows=1 ")
    )
    assert json.loads(render_json(DAY, rows, partial=True))["partial"] is True


def test_a_partial_capture_shows_what_it_released_apart_from_the_amount_it_moved() -> None:
    # 4000 held, 1000 captured: the other 3000 went back to the cardholder, and moved no money.
    rows = [_row("sale-1", 1000, released=3000), _row("sale-2", 2500)]
    lines = render_csv(DAY, rows).splitlines()
    assert [line.split(",")[-3:] for line in lines[1:3]] == [
        ["1000", "10", "3000"],
        ["2500", "25", "0"],
    ]
    assert lines[-1] == (
        "# end date=2031-03-14 rows=2 usd.rows=2 usd.amount=3500 usd.fee=35 usd.released=3000"
    )
    document = json.loads(render_json(DAY, rows))
    assert [row["released"] for row in document["rows"]] == [3000, 0]
    assert document["totals"]["usd"] == {"rows": 2, "amount": 3500, "fee": 35, "released": 3000}
