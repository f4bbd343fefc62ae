"""`remit ledger verify` finds a payout whose amount the ledger does not move: a step out of
transit (paid, failed, canceled) or into it that moved another amount, or moved it on the
wrong ledger account, and the payouts of a status that no longer add up to the balance of the
ledger account holding their money. Postings are added to a payout's ledger transaction with
ordinary INSERTs, which the database's triggers let through."""

from typing import Final

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.ledger.chart import ACQUIRER_CLEARING, AVAILABLE, PAID_OUT, PAYOUTS_IN_TRANSIT
from remit.ledger.verify import Difference, DifferenceKind, VerifyReport
from tests.integration.ledger.test_verify_missing_rows_and_payouts import (
    Payouts,
    payouts_of_every_status,
)
from tests.integration.ledger.test_verify_tampering import tamper, verified

pytestmark = pytest.mark.anyio

# What payouts_of_every_status makes, in USD: the amount of each payout.
PAID, FAILED, CANCELED, PENDING = 1_000, 2_000, 700, 300


def posting(transaction_id: str, ledger_account: str, amount: int) -> str:
    """An INSERT of one more leg, on the account's USD `ledger_account`, into a transaction."""
    return (
        "INSERT INTO ledger_postings (account_id, transaction_id, ledger_account_id, amount_minor) "  # noqa: S608
        f"SELECT :a, '{transaction_id}', id, {amount} FROM ledger_accounts "
        f"WHERE account_id = :a AND name = '{ledger_account}' AND currency = 'usd'"
    )


def payout_findings(report: VerifyReport) -> list[Difference]:
    return [d for d in report.differences if d.kind is DifferenceKind.PAYOUT_MISMATCH]


def legs_found(report: VerifyReport) -> set[tuple[str | None, str | None, int, int]]:
    """(transaction, ledger account, expected, found) of each finding on a payout (not on
    the payouts' totals, which name no transaction)."""
    return {
        (d.transaction_id, d.ledger_account, d.expected_minor, d.actual_minor)
        for d in payout_findings(report)
        if d.transaction_id is not None
    }


async def made_and_verified(engine: AsyncEngine, account_id: str, clock: FixedClock) -> Payouts:
    made = await payouts_of_every_status(engine, account_id, clock)
    report = await verified(engine, account_id, clock)
    assert report.ok, report.differences
    return made


async def test_a_paid_payout_whose_ledger_transaction_paid_out_less(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    paid = f"{made.paid}:paid"
    await tamper(
        core_engine,
        account_id,
        posting(paid, PAYOUTS_IN_TRANSIT, 100),
        posting(paid, PAID_OUT, -100),
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {
        (paid, PAYOUTS_IN_TRANSIT, -PAID, -PAID + 100),
        (paid, PAID_OUT, PAID, PAID - 100),
    }
    [finding, _] = sorted(payout_findings(report), key=lambda d: d.ledger_account or "")
    assert finding.description == (
        f"{made.paid}: {paid} moved 900 on paid_out, the payout's amount 1000 needs 1000"
    )
    assert finding.currency == "usd"


async def test_a_paid_payout_whose_money_went_back_to_available(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    paid = f"{made.paid}:paid"
    await tamper(
        core_engine,
        account_id,
        posting(paid, PAID_OUT, -PAID),
        posting(paid, AVAILABLE, PAID),
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {(paid, PAID_OUT, PAID, 0), (paid, None, 0, PAID)}
    assert any(
        "on ledger accounts other than payouts_in_transit and paid_out" in d.description
        for d in payout_findings(report)
    )


@pytest.mark.parametrize(
    ("which", "step", "amount", "extra"),
    [
        ("failed", "failure", FAILED, 500),  # gave back 500 less than it took
        ("canceled", "cancel", CANCELED, -100),  # gave back 100 more
    ],
)
async def test_a_payout_whose_return_moved_another_amount(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    which: str,
    step: str,
    amount: int,
    extra: int,
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    returned = f"{getattr(made, which)}:{step}"
    await tamper(
        core_engine,
        account_id,
        posting(returned, PAYOUTS_IN_TRANSIT, extra),
        posting(returned, AVAILABLE, -extra),
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {
        (returned, PAYOUTS_IN_TRANSIT, -amount, -amount + extra),
        (returned, AVAILABLE, amount, amount - extra),
    }


async def test_a_payout_that_took_less_from_available_than_it_put_in_transit(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    sent = f"{made.pending}:payout"
    await tamper(
        core_engine,
        account_id,
        posting(sent, AVAILABLE, 100),
        posting(sent, ACQUIRER_CLEARING, -100),
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {
        (sent, AVAILABLE, -PENDING, -PENDING + 100),
        (sent, None, 0, 100),
    }


async def test_a_payout_that_put_more_in_transit_than_it_took_from_available(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """The row's amount is told apart from the in-transit leg, and the other legs still held
    to the row's amount, not to what the ledger put in transit."""
    made = await made_and_verified(core_engine, account_id, clock)
    sent = f"{made.pending}:payout"
    await tamper(
        core_engine,
        account_id,
        posting(sent, PAYOUTS_IN_TRANSIT, 50),
        posting(sent, ACQUIRER_CLEARING, -50),
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {
        (sent, PAYOUTS_IN_TRANSIT, PENDING + 50, PENDING),
        (sent, None, 0, 50),
    }


async def test_a_row_whose_amount_alone_differs_is_one_finding_not_one_per_leg(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"UPDATE payouts SET amount = amount + 100 WHERE id = '{made.paid}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    assert legs_found(report) == {(f"{made.paid}:payout", PAYOUTS_IN_TRANSIT, PAID, PAID + 100)}


def totals(report: VerifyReport) -> set[tuple[str | None, int, int]]:
    """(ledger account, what its balance says, what the payouts add up to) of each finding
    on the payouts' totals."""
    return {
        (d.ledger_account, d.expected_minor, d.actual_minor)
        for d in payout_findings(report)
        if d.transaction_id is None
    }


IN_TRANSIT_HELD: Final = PENDING  # the failed and canceled ones gave theirs back


@pytest.mark.parametrize(
    ("change", "found"),
    [
        (
            "UPDATE payouts SET amount = amount + 100 WHERE id = '{pending}'",
            {(PAYOUTS_IN_TRANSIT, IN_TRANSIT_HELD, IN_TRANSIT_HELD + 100)},
        ),
        (
            "UPDATE payouts SET amount = amount - 1 WHERE id = '{paid}'",
            {(PAID_OUT, PAID, PAID - 1)},
        ),
        (
            "UPDATE payouts SET status = 'paid' WHERE id = '{pending}'",
            {(PAYOUTS_IN_TRANSIT, IN_TRANSIT_HELD, 0), (PAID_OUT, PAID, PAID + PENDING)},
        ),
        (
            "UPDATE payouts SET status = 'in_transit' WHERE id = '{failed}'",
            {(PAYOUTS_IN_TRANSIT, IN_TRANSIT_HELD, IN_TRANSIT_HELD + FAILED)},
        ),
        ("DELETE FROM payouts WHERE id = '{paid}'", {(PAID_OUT, PAID, 0)}),
        (
            "UPDATE ledger_accounts SET posted_balance_minor = posted_balance_minor + 5 "
            "WHERE account_id = :a AND name = 'payouts_in_transit'",
            {(PAYOUTS_IN_TRANSIT, IN_TRANSIT_HELD + 5, IN_TRANSIT_HELD)},
        ),
    ],
)
async def test_payouts_of_a_status_that_do_not_add_up_to_the_balance_holding_them(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    change: str,
    found: set[tuple[str, int, int]],
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        change.format(
            pending=made.pending, paid=made.paid, failed=made.failed, canceled=made.canceled
        ),
    )
    report = await verified(core_engine, account_id, clock)
    assert totals(report) == found
    for difference in payout_findings(report):
        if difference.transaction_id is None:
            assert difference.account_id == account_id
            assert difference.currency == "usd"


async def test_the_totals_name_what_each_balance_and_its_payouts_hold(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    made = await made_and_verified(core_engine, account_id, clock)
    await tamper(
        core_engine,
        account_id,
        f"UPDATE payouts SET amount = amount + 100 WHERE id = '{made.pending}'",  # noqa: S608
    )
    report = await verified(core_engine, account_id, clock)
    [total] = [d for d in payout_findings(report) if d.transaction_id is None]
    assert total.description == (
        "pending and in_transit payouts in usd add up to 400, payouts_in_transit holds 300"
    )


@pytest.mark.parametrize(
    ("which", "type"),
    [("paid", "payout"), ("failed", "payout_failure"), ("canceled", "payout_cancel")],
)
async def test_a_payouts_balance_transaction_that_moved_another_amount(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, which: str, type: str
) -> None:
    """Held to the ledger's leg on available by the balance transactions' check, which the
    legs' check holds to the payout's amount: the finding names the payout as its source."""
    made = await made_and_verified(core_engine, account_id, clock)
    payout_id = getattr(made, which)
    await tamper(
        core_engine,
        account_id,
        "UPDATE balance_transactions SET amount = amount + 1, net = net + 1 "  # noqa: S608
        f"WHERE source_id = '{payout_id}' AND type = '{type}'",
    )
    report = await verified(core_engine, account_id, clock)
    shown = [
        d
        for d in report.differences
        if d.kind is DifferenceKind.BALANCE_TRANSACTION_MISMATCH and payout_id in d.description
    ]
    assert {(d.expected_minor + 1 == d.actual_minor) for d in shown} == {True}
    assert {d.description.split(": ")[1].split(" ")[0] for d in shown} == {"net", "amount"}
