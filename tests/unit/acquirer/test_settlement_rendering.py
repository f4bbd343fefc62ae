"""A settlement report says how many rows it holds, even when it holds none."""

import json
from datetime import date

from tests.support.settlement_reports import render_csv, render_json

DAY = date(2031, 3, 14)


def test_an_empty_day_still_ends_with_its_trailer() -> None:
    assert render_csv(DAY, []).splitlines() == [
        "settled_at,kind,reference,authorization_id,operation_id,merchant_id,currency,amount,fee",
        "# end date=2031-03-14 rows=0",
    ]
    assert render_csv(DAY, [], "acct_1A").splitlines()[-1] == (
        "# end date=2031-03-14 merchant_id=acct_1A rows=0"
    )
    assert json.loads(render_json(DAY, [])) == {
        "date": "2031-03-14",
        "rows": [],
        "row_count": 0,
        "totals": {},
    }
