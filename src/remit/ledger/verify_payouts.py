"""`remit ledger verify`: the payouts table against the ledger transactions that moved the money.

A payout row is not hashed: only the ledger's postings are. Every payout's money goes through
`payouts_in_transit` (`payouts.py`): `po:payout` moves its amount there from available, and
`po:paid` takes it out again to paid_out, `po:failure` or `po:cancel` back to available. So
each payout row, and each payout the postings name, is held to them (the ledger's own
postings, `own_transactions.py`: a generic posting made before such ids were refused may have
touched the account too):

- a row for every payout the ledger moved, and a `po:payout` posting for every row;
- the row's amount is what `po:payout` put in transit, and every leg of every step moved that
  amount: `po:payout` -amount on available, each step out of transit -amount on
  payouts_in_transit and +amount on paid_out (`po:paid`) or available (`po:failure`,
  `po:cancel`), and none of them anything on another ledger account. A row whose amount alone
  differs from a ledger that agrees with itself is one finding, not one per leg;
- its currency is the one every leg moved;
- its status is the one the postings give it: `paid` after `po:paid`, `failed` after
  `po:failure`, `canceled` after `po:cancel`, otherwise `pending` or `in_transit` (which the
  ledger does not tell apart), and at most one of those three;
- its `balance_transaction` is the row showing `po:payout`, and its
  `failure_balance_transaction` the row showing its return, `po:failure` or `po:cancel` (none
  unless it failed or was canceled: Stripe names the reversing row for both; payouts canceled
  before core migration 0080 were given theirs by it).

Those balance transactions' amounts are held to the same legs by `verify_balance_transactions`
(a payout row's net is its step's leg on available), so one that disagrees with its payout's
amount disagrees with the ledger there, named with the payout as its source.

One set-based query: the postings to `payouts_in_transit` and `paid_out` (joined to their
transactions, for the metadata) find the payouts' steps, whose legs are read by key and
grouped by payout, and the payouts' balance transactions, grouped likewise, all joined to the
payouts table; the rows are judged as they stream.
"""

from dataclasses import dataclass
from typing import Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import AVAILABLE, PAID_OUT, PAYOUTS_IN_TRANSIT
from remit.ledger.objects import PayoutStatus
from remit.ledger.own_transactions import written_by_ledger
from remit.ledger.verify_differences import Difference, DifferenceKind

_UNSETTLED: Final = frozenset({PayoutStatus.PENDING.value, PayoutStatus.IN_TRANSIT.value})

# Each step of a payout (`payouts.py`): what it moves on payouts_in_transit, in payout amounts,
# and the ledger account on its other side, which moves the opposite.
_STEPS: Final = {
    "payout": (1, AVAILABLE),
    "paid": (-1, PAID_OUT),
    "failure": (-1, AVAILABLE),
    "cancel": (-1, AVAILABLE),
}

# Per step, pivoted into one row per payout: whether the ledger made it, and its legs.
_STEP_COLUMNS = """
        bool_or(step = :{step}_step) AS {step}_made,
        coalesce(sum(amount_minor) FILTER (
            WHERE step = :{step}_step AND name = :in_transit), 0) AS {step}_in_transit,
        coalesce(sum(amount_minor) FILTER (
            WHERE step = :{step}_step AND name = :{step}_counter), 0) AS {step}_counter,
        coalesce(sum(abs(amount_minor)) FILTER (
            WHERE step = :{step}_step AND name NOT IN (:in_transit, :{step}_counter)
        ), 0) AS {step}_elsewhere"""

# Suffixes are bound, not written: text() would read ":payout" in a literal as a parameter.
# A payout's steps are found through their legs on payouts_in_transit and paid_out (only
# payouts, and generic postings from before the chart was refused to callers, touch them),
# then all their legs are read by key.
_PAYOUTS = """
WITH steps AS (
    SELECT DISTINCT lp.account_id, lp.transaction_id
    FROM ledger_postings AS lp
    JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
    JOIN ledger_transactions AS lt ON lt.account_id = lp.account_id AND lt.id = lp.transaction_id
    WHERE la.name IN (:in_transit, :paid_out) AND {own} {moves_scope}
),
legs AS (
    SELECT s.account_id, regexp_replace(s.transaction_id, :any_step, '') AS payout_id,
        substring(s.transaction_id FROM :step_of) AS step,
        la.name, la.currency, lp.amount_minor
    FROM steps AS s
    JOIN ledger_postings AS lp
        ON lp.account_id = s.account_id AND lp.transaction_id = s.transaction_id
    JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
),
moves AS (
    SELECT account_id, payout_id,
        min(currency) AS currency, count(DISTINCT currency) AS currencies,{step_columns}
    FROM legs
    GROUP BY 1, 2
),
shown AS (
    SELECT account_id, regexp_replace(ledger_transaction_id, :any_step, '') AS payout_id,
        min(id) FILTER (WHERE ledger_transaction_id ~ :payout_end) AS payout_row,
        min(id) FILTER (WHERE ledger_transaction_id ~ :return_end) AS return_row
    FROM balance_transactions
    WHERE ledger_transaction_id ~ :payout_steps {shown_scope}
    GROUP BY 1, 2
)
SELECT coalesce(p.account_id, m.account_id) AS account_id, coalesce(p.id, m.payout_id) AS id,
    p.id AS row_id, p.amount, p.currency AS row_currency, p.status,
    p.balance_transaction_id, p.failure_balance_transaction_id,
    m.currency, m.currencies, {step_names}, s.payout_row, s.return_row
FROM (SELECT * FROM payouts {payouts_scope}) AS p
FULL JOIN moves AS m ON m.account_id = p.account_id AND m.payout_id = p.id
LEFT JOIN shown AS s ON s.account_id = p.account_id AND s.payout_id = p.id
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class _Leg:
    """What one step of a payout moved on one side: `ledger_account` None for the ledger
    accounts neither side names (then `moved` is the sum of their legs' absolute values)."""

    step: str
    ledger_account: str | None
    per_amount: int  # what it should move, in payout amounts
    moved: int


def _finding(
    row: Row[tuple[object, ...]],
    why: str,
    expected: int = 0,
    actual: int = 0,
    *,
    step: str = "payout",
    ledger_account: str | None = None,
) -> Difference:
    return Difference(
        kind=DifferenceKind.PAYOUT_MISMATCH,
        account_id=str(row.account_id),
        currency=str(row.row_currency or row.currency or ""),
        expected_minor=expected,
        actual_minor=actual,
        description=f"{row.id}: {why}",
        transaction_id=f"{row.id}:{step}",
        ledger_account=ledger_account,
    )


def _ends(row: Row[tuple[object, ...]]) -> list[str]:
    """The statuses the postings that took the payout's money out of transit give it."""
    return [
        status
        for moved, status in (
            (row.paid_made, PayoutStatus.PAID.value),
            (row.failure_made, PayoutStatus.FAILED.value),
            (row.cancel_made, PayoutStatus.CANCELED.value),
        )
        if moved
    ]


def _status_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    ends = _ends(row)
    if len(ends) > 1:
        return [_finding(row, f"the ledger ended it more than once: {' and '.join(ends)}")]
    if ends:
        expected, matches = ends[0], row.status == ends[0]
    else:
        expected, matches = "pending or in_transit", row.status in _UNSETTLED
    found = [] if matches else [_finding(row, f"status {row.status}, the ledger says {expected}")]
    if row.failure_balance_transaction_id != row.return_row:
        found.append(
            _finding(
                row,
                f"failure_balance_transaction {row.failure_balance_transaction_id}, the row "
                f"showing {row.id}:failure or {row.id}:cancel is {row.return_row}",
            )
        )
    return found


def _legs(row: Row[tuple[object, ...]]) -> list[_Leg]:
    """Every leg of the steps the ledger made of this payout, po:payout's in transit first."""
    columns = row._mapping
    legs: list[_Leg] = []
    for step, (in_transit, counter) in _STEPS.items():
        if columns[f"{step}_made"]:
            legs += [
                _Leg(step, PAYOUTS_IN_TRANSIT, in_transit, int(columns[f"{step}_in_transit"])),
                _Leg(step, counter, -in_transit, int(columns[f"{step}_counter"])),
                _Leg(step, None, 0, int(columns[f"{step}_elsewhere"])),
            ]
    return legs


def _leg_finding(row: Row[tuple[object, ...]], leg: _Leg, amount: int) -> Difference:
    expected = leg.per_amount * amount
    transaction = f"{row.id}:{leg.step}"
    if leg.ledger_account is None:
        _, counter = _STEPS[leg.step]
        where = f"ledger accounts other than {PAYOUTS_IN_TRANSIT} and {counter} (in all)"
    else:
        where = leg.ledger_account
    return _finding(
        row,
        f"{transaction} moved {leg.moved} on {where}, the payout's amount {amount} needs "
        f"{expected}",
        expected,
        leg.moved,
        step=leg.step,
        ledger_account=leg.ledger_account,
    )


def _amount_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    """Each leg of each step against the payout row's amount. When every leg agrees with
    what po:payout put in transit and only the row differs, the row's amount is the one
    finding, not every leg of the ledger's."""
    amount, sent = int(row.amount), int(row.payout_in_transit)
    legs = _legs(row)
    found: list[Difference] = []
    if sent != amount:
        found.append(
            _finding(
                row,
                f"amount {amount}, the ledger put {sent} in transit",
                sent,
                amount,
                ledger_account=PAYOUTS_IN_TRANSIT,
            )
        )
        if all(leg.moved == leg.per_amount * sent for leg in legs):
            return found
    # legs[0], po:payout's leg in transit, is `sent`: said above when it differs.
    return found + [
        _leg_finding(row, leg, amount) for leg in legs[1:] if leg.moved != leg.per_amount * amount
    ]


def _row_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    if row.row_id is None:
        return [_finding(row, "the ledger moved a payout that has no payout row")]
    if not row.payout_made:
        return [_finding(row, "no ledger transaction put this payout's money in transit")]
    found = _amount_problems(row)
    if int(row.currencies) != 1 or row.currency != row.row_currency:
        found.append(_finding(row, f"currency {row.row_currency}, the ledger moved {row.currency}"))
    if row.balance_transaction_id != row.payout_row:
        found.append(
            _finding(
                row,
                f"balance_transaction {row.balance_transaction_id}, the row showing "
                f"{row.id}:payout is {row.payout_row}",
            )
        )
    return found + _status_problems(row)


async def payout_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    scoped = account_id is not None
    # The id is matched on the posting's side: its pattern filters the postings before the
    # join reads their transactions' metadata.
    own, own_params = written_by_ledger("lp.transaction_id", "lt.metadata", tuple(_STEPS))
    query = _PAYOUTS.format(
        own=own,
        moves_scope="AND lp.account_id = :account_id" if scoped else "",
        shown_scope="AND account_id = :account_id" if scoped else "",
        payouts_scope="WHERE account_id = :account_id" if scoped else "",
        step_columns=",".join(_STEP_COLUMNS.format(step=step) for step in _STEPS),
        step_names=", ".join(
            f"m.{step}_{column}"
            for step in _STEPS
            for column in ("made", "in_transit", "counter", "elsewhere")
        ),
    )
    params = {
        **own_params,
        **{f"{step}_step": step for step in _STEPS},
        **{f"{step}_counter": counter for step, (_, counter) in _STEPS.items()},
        "account_id": account_id,
        "in_transit": PAYOUTS_IN_TRANSIT,
        "paid_out": PAID_OUT,
        "any_step": ":[a-z_]+$",
        "step_of": ":([a-z_]+)$",
        "payout_end": ":payout$",
        "return_end": ":(failure|cancel)$",
        "payout_steps": ":(payout|failure|cancel)$",
    }
    result = await db.stream(text(query).execution_options(yield_per=5000), params)
    found: list[Difference] = []
    async for row in result:
        found += _row_problems(row)
    return found
