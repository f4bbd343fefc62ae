"""Daily settlement, and the promise that the acquirer database never holds a card number."""

import json
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.domain import SettlementKind, SettlementRow
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.core.settlement_days import parse_day
from tests.integration.acquirer.support import MERCHANT, authorization_request
from tests.integration.acquirer.test_test_cards import APPROVALS, DECLINES
from tests.support.settlement_reports import render_csv, render_json

pytestmark = pytest.mark.anyio

OTHER_MERCHANT = "acct_1AnotherMerchant"


async def test_the_report_lists_each_days_captures_and_refunds_with_their_fees(
    service: AcquirerService, clock: FixedClock
) -> None:
    # 2031-03-14, from 12:00 UTC.
    sale = await service.authorize(
        authorization_request(reference="sale", amount_minor=10_000, capture=True)
    )
    held = await service.authorize(authorization_request(reference="held", amount_minor=8000))
    held_id = held.operation.authorization_id
    assert held_id is not None
    clock.advance(60)
    await service.capture("held-capture", held_id, 5000, keep_open=False)
    clock.advance(1)
    await service.refund("held-refund", held_id, 2000)
    clock.advance(1)
    await service.authorize(authorization_request("4000000000000002", reference="declined"))
    await service.authorize(authorization_request(reference="auth-only"))
    uncaptured = await service.authorize(authorization_request(reference="voided"))
    assert uncaptured.operation.authorization_id is not None
    await service.void("void", uncaptured.operation.authorization_id)
    await service.capture("refused-capture", held_id, 1, keep_open=False)
    await service.authorize(
        authorization_request(
            reference="other-sale", amount_minor=333, capture=True, merchant_id=OTHER_MERCHANT
        )
    )
    clock.advance(12 * 3600)  # 2031-03-15, 00:01 UTC
    await service.refund("next-day-refund", held_id, 1000)

    day_one = await settled_on(service, date(2031, 3, 14))
    # The partial capture of the 8000 held released the other 3000 back to the cardholder.
    assert [
        (row.kind, row.reference, row.amount_minor, row.fee_minor, row.released_minor)
        for row in day_one
    ] == [
        (SettlementKind.CAPTURE, "sale", 10_000, 150, 0),
        (SettlementKind.CAPTURE, "held-capture", 5000, 75, 3000),
        (SettlementKind.REFUND, "held-refund", 2000, 0, 0),
        (SettlementKind.CAPTURE, "other-sale", 333, 5, 0),
    ]
    assert day_one[0].authorization_id == sale.operation.authorization_id
    assert day_one[1].authorization_id == held_id
    assert {row.merchant_id for row in day_one} == {MERCHANT, OTHER_MERCHANT}
    assert all(row.currency == "usd" for row in day_one)

    only_other = await settled_on(service, date(2031, 3, 14), OTHER_MERCHANT)
    assert [row.reference for row in only_other] == ["other-sale"]
    day_two = await settled_on(service, date(2031, 3, 15))
    assert [(row.reference, row.kind) for row in day_two] == [
        ("next-day-refund", SettlementKind.REFUND)
    ]
    assert await settled_on(service, date(2031, 3, 13)) == []

    csv_lines = render_csv(date(2031, 3, 14), day_one).splitlines()
    assert csv_lines[0] == (
        "settled_at,kind,reference,authorization_id,operation_id,merchant_id,currency,amount,fee,"
        "released"
    )
    assert csv_lines[1].startswith("2031-03-14T12:00:00Z,capture,sale,auth_")
    assert csv_lines[1].endswith(",usd,10000,150,0")
    assert csv_lines[2].endswith(",usd,5000,75,3000")
    assert len(csv_lines) == 6
    # Refunds are listed with positive amounts, and the sums are of the columns as listed.
    assert csv_lines[5] == (
        "# end date=2031-03-14 rows=4 usd.rows=4 usd.amount=17333 usd.fee=230 usd.released=3000"
    )
    document = json.loads(render_json(date(2031, 3, 14), day_one))
    assert document["date"] == "2031-03-14"
    assert document["rows"][2]["kind"] == "refund"
    assert document["rows"][2]["amount"] == 2000
    assert document["row_count"] == 4
    assert document["totals"] == {
        "usd": {"rows": 4, "amount": 17_333, "fee": 230, "released": 3000}
    }


async def settled_on(
    service: AcquirerService, day: date, merchant_id: str | None = None
) -> list[SettlementRow]:
    """Every capture and refund settled on `day`, in one page."""
    return (await service.settlement_page(day, merchant_id)).rows


@pytest.mark.parametrize("raw", ["2031-3-14", "14/03/2031", "2031-02-30", "", "2031-03-14T00"])
def test_a_malformed_settlement_date_is_rejected(raw: str) -> None:
    with pytest.raises(RemitError) as caught:
        parse_day(raw)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT
    assert caught.value.param == "date"


async def test_the_acquirer_database_never_contains_a_card_number(
    service: AcquirerService, acquirer_engine: AsyncEngine
) -> None:
    numbers = [card.number for card in APPROVALS] + [card.number for card in DECLINES]
    for index, number in enumerate(numbers):
        recorded = await service.authorize(authorization_request(number, cvc="9731"))
        auth_id = recorded.operation.authorization_id
        if auth_id is not None:
            await service.capture(f"cap-{index}", auth_id, 500, keep_open=False)
            await service.refund(f"ref-{index}", auth_id, 100)
    async with acquirer_engine.connect() as db:
        tables = (
            await db.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        ).scalars()
        dump: list[str] = []
        for table in list(tables):
            # Table names come from the catalogue, not from input.
            rows = await db.execute(text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
            dump.extend(rows.scalars())
    everything = "\n".join(dump)
    assert "auth_" in everything  # the scan did read the records
    for number in numbers:
        assert number not in everything, f"card ending {number[-4:]} stored in full"
    assert '"cvc"' not in everything
