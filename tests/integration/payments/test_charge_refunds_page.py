"""A charge read shows its refunds only when asked, and then their first page: at most
`REFUNDS_PAGE` (newest first) with `has_more`, however many there are; a read that does not
show them reads none."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.payments import charge_refunds
from remit.payments.charge_refunds import ChargeRefunds
from remit.payments.charges import Refund, RefundStatus
from remit.payments.grpc import charge_message
from remit.payments.repository import RefundRepository
from remit.payments.service import PaymentsService
from tests.integration.payments.test_payments_service import pay
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

PAGE = 3
"""Lowered from 100 so that a charge with more refunds than a page stays cheap to make."""


async def _charge_with_refunds(
    engine: AsyncEngine,
    payments: PaymentsService,
    account_id: str,
    count: int,
    prefix: str = "re_page",
) -> tuple[str, list[str]]:
    """A paid charge and `count` refunds of it, written straight to the database (oldest
    first): what is read back is under test here, not how refunds are made."""
    intent = await pay(payments, account_id, f"paid-{prefix}", amount=10_000)
    charge_id = intent.latest_charge_id or ""
    start = datetime.now(UTC)
    ids = [f"{prefix}{n:03d}" for n in range(count)]
    async with engine.begin() as db:
        refunds = RefundRepository(db)
        for n, refund_id in enumerate(ids):
            at = start + timedelta(seconds=n)
            await refunds.insert(
                Refund(id=refund_id, account_id=account_id, charge_id=charge_id,
                       payment_intent_id=intent.id, amount_minor=1, currency="usd",
                       status=RefundStatus.SUCCEEDED, created_at=at, updated_at=at)
            )  # fmt: skip
    return charge_id, ids


def _refund_reads(statements: list[str]) -> list[str]:
    return [sql for sql in statements if "FROM refunds" in sql]


async def test_a_charge_with_more_refunds_than_a_page_shows_the_newest_page_and_has_more(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(charge_refunds, "REFUNDS_PAGE", PAGE)
    charge_id, ids = await _charge_with_refunds(core_engine, payments, account_id, PAGE + 1)
    newest_first = ids[::-1]

    _, shown = await payments.get_charge(account_id, charge_id, with_refunds=True)
    assert ([r.id for r in shown.first], shown.has_more) == (newest_first[:PAGE], True)

    listed, _ = await payments.list_charges(account_id, limit=100, with_refunds=True)
    assert [([r.id for r in refunds.first], refunds.has_more) for _, refunds in listed] == [
        (newest_first[:PAGE], True)
    ]

    message = charge_message(*(await payments.get_charge(account_id, charge_id, with_refunds=True)))
    assert ([r.id for r in message.refunds.data], message.refunds.has_more) == (
        newest_first[:PAGE],
        True,
    )

    # Exactly a page: all of them, and nothing more.
    monkeypatch.setattr(charge_refunds, "REFUNDS_PAGE", PAGE + 1)
    _, whole = await payments.get_charge(account_id, charge_id, with_refunds=True)
    assert ([r.id for r in whole.first], whole.has_more) == (newest_first, False)


async def test_reads_that_do_not_show_refunds_read_none(
    core_engine: AsyncEngine, payments: PaymentsService, account_id: str
) -> None:
    charge_id, _ = await _charge_with_refunds(core_engine, payments, account_id, 2)

    with statements_sent(core_engine) as statements:
        _, got = await payments.get_charge(account_id, charge_id)
        listed, _ = await payments.list_charges(account_id, limit=100)
    assert got == ChargeRefunds()
    assert [refunds for _, refunds in listed] == [ChargeRefunds()]
    assert _refund_reads(statements) == []
    assert charge_message(listed[0][0]).refunds.data == []

    with statements_sent(core_engine) as statements:
        await payments.get_charge(account_id, charge_id, with_refunds=True)
    assert len(_refund_reads(statements)) == 1


async def test_a_list_reads_the_refunds_of_all_its_charges_in_one_query(
    core_engine: AsyncEngine,
    payments: PaymentsService,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(charge_refunds, "REFUNDS_PAGE", PAGE)
    made = [
        await _charge_with_refunds(core_engine, payments, account_id, count, prefix=f"re_{n}_")
        for n, count in enumerate((PAGE + 2, 0, PAGE, 1))
    ]
    newest_first = [(charge_id, ids[::-1]) for charge_id, ids in reversed(made)]

    with statements_sent(core_engine) as statements:
        listed, more = await payments.list_charges(account_id, limit=100, with_refunds=True)
    assert len(_refund_reads(statements)) == 1
    assert more is False
    assert [
        (charge.id, [r.id for r in refunds.first], refunds.has_more) for charge, refunds in listed
    ] == [(charge_id, ids[:PAGE], len(ids) > PAGE) for charge_id, ids in newest_first]
    for charge, refunds in listed:  # as each charge's own read shows them
        _, alone = await payments.get_charge(account_id, charge.id, with_refunds=True)
        assert refunds == alone
