"""`remit ledger verify`: the payouts table against the ledger transactions that moved the money.

A payout row is not hashed: only the ledger's postings are. Every payout's money goes through
`payouts_in_transit` (`payouts.py`): `po:payout` puts its amount there, and `po:paid`,
`po:failure` or `po:cancel` takes it out again. So each payout row, and each payout the
postings name, is held to them (the ledger's own postings, `own_transactions.py`: a generic
posting made before such ids were refused may have touched the account too):

- a row for every payout the ledger moved, and a `po:payout` posting for every row;
- the row's amount and currency are what `po:payout` put in transit;
- its status is the one the postings give it: `paid` after `po:paid`, `failed` after
  `po:failure`, `canceled` after `po:cancel`, otherwise `pending` or `in_transit` (which the
  ledger does not tell apart), and at most one of those three;
- its `balance_transaction` is the row showing `po:payout`, and its
  `failure_balance_transaction` the row showing its return, `po:failure` or `po:cancel` (none
  unless it failed or was canceled: Stripe names the reversing row for both; payouts canceled
  before core migration 0080 were given theirs by it).

One set-based query, one scan of each table it reads: the postings to `payouts_in_transit`
(joined to their transactions, for the metadata) and the payouts' balance transactions, each
grouped by payout, joined to the payouts table; the rows are judged as they stream.
"""

from typing import Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import PAYOUTS_IN_TRANSIT
from remit.ledger.objects import PayoutStatus
from remit.ledger.own_transactions import written_by_ledger
from remit.ledger.verify_differences import Difference, DifferenceKind

_UNSETTLED: Final = frozenset({PayoutStatus.PENDING.value, PayoutStatus.IN_TRANSIT.value})

# Suffixes are bound, not written: text() would read ":payout" in a literal as a parameter.
_PAYOUTS = """
WITH moves AS (
    SELECT lp.account_id, regexp_replace(lp.transaction_id, :any_step, '') AS payout_id,
        min(la.currency) AS currency, count(DISTINCT la.currency) AS currencies,
        sum(lp.amount_minor) FILTER (WHERE lp.transaction_id ~ :payout_end) AS sent,
        bool_or(lp.transaction_id ~ :payout_end) AS created,
        bool_or(lp.transaction_id ~ :paid_end) AS paid,
        bool_or(lp.transaction_id ~ :failure_end) AS failed,
        bool_or(lp.transaction_id ~ :cancel_end) AS canceled
    FROM ledger_postings AS lp
    JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
    JOIN ledger_transactions AS lt ON lt.account_id = lp.account_id AND lt.id = lp.transaction_id
    WHERE la.name = :in_transit AND {own} {moves_scope}
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
    m.currency, m.currencies, m.sent, m.created, m.paid, m.failed, m.canceled,
    s.payout_row, s.return_row
FROM (SELECT * FROM payouts {payouts_scope}) AS p
FULL JOIN moves AS m ON m.account_id = p.account_id AND m.payout_id = p.id
LEFT JOIN shown AS s ON s.account_id = p.account_id AND s.payout_id = p.id
ORDER BY 1, 2
"""


def _finding(
    row: Row[tuple[object, ...]], why: str, expected: int = 0, actual: int = 0
) -> Difference:
    return Difference(
        kind=DifferenceKind.PAYOUT_MISMATCH,
        account_id=str(row.account_id),
        currency=str(row.row_currency or row.currency or ""),
        expected_minor=expected,
        actual_minor=actual,
        description=f"{row.id}: {why}",
        transaction_id=f"{row.id}:payout",
    )


def _ends(row: Row[tuple[object, ...]]) -> list[str]:
    """The statuses the postings that took the payout's money out of transit give it."""
    return [
        status
        for moved, status in (
            (row.paid, PayoutStatus.PAID.value),
            (row.failed, PayoutStatus.FAILED.value),
            (row.canceled, PayoutStatus.CANCELED.value),
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


def _row_problems(row: Row[tuple[object, ...]]) -> list[Difference]:
    if row.row_id is None:
        return [_finding(row, "the ledger moved a payout that has no payout row")]
    if not row.created:
        return [_finding(row, "no ledger transaction put this payout's money in transit")]
    found: list[Difference] = []
    if int(row.sent) != int(row.amount):
        found.append(
            _finding(
                row,
                f"amount {row.amount}, the ledger put {row.sent} in transit",
                int(row.sent),
                int(row.amount),
            )
        )
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
    own, own_params = written_by_ledger(
        "lp.transaction_id", "lt.metadata", ("payout", "paid", "failure", "cancel")
    )
    query = _PAYOUTS.format(
        own=own,
        moves_scope="AND lp.account_id = :account_id" if scoped else "",
        shown_scope="AND account_id = :account_id" if scoped else "",
        payouts_scope="WHERE account_id = :account_id" if scoped else "",
    )
    params = {
        **own_params,
        "account_id": account_id,
        "in_transit": PAYOUTS_IN_TRANSIT,
        "any_step": ":[a-z_]+$",
        "payout_end": ":payout$",
        "paid_end": ":paid$",
        "failure_end": ":failure$",
        "cancel_end": ":cancel$",
        "return_end": ":(failure|cancel)$",
        "payout_steps": ":(payout|failure|cancel)$",
    }
    result = await db.stream(text(query).execution_options(yield_per=5000), params)
    found: list[Difference] = []
    async for row in result:
        found += _row_problems(row)
    return found
