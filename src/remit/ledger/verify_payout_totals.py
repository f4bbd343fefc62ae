"""`remit ledger verify`: the payouts' amounts, summed by status, against the ledger accounts
that hold them.

Per account and currency, `payouts_in_transit` holds what pending and in_transit payouts
amount to, and `paid_out` what paid ones do (`payouts.py`: failed and canceled payouts gave
their money back to available). `verify_payouts` holds each payout to its own postings; this
states the same books as totals, against the balances the ledger accounts store, so a payout
row or a posting that slipped past the per-payout check still leaves the totals apart, and
the report says by how much per balance.

Generic postings made before the chart's accounts were refused to callers
(`own_transactions.py`) may have moved money on these accounts too: what the posted ones
moved is counted beside the payouts. One set-based query: the payouts grouped by account,
currency and the ledger account their status puts them in, the postings to the two ledger
accounts not made by a payout's own steps grouped likewise, both joined to the ledger
accounts' balances; only the disagreeing balances come back.
"""

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import PAID_OUT, PAYOUTS_IN_TRANSIT
from remit.ledger.domain import TransactionKind
from remit.ledger.objects import PayoutStatus
from remit.ledger.own_transactions import written_by_ledger
from remit.ledger.verify_differences import Difference, DifferenceKind

# The payouts whose money each ledger account holds, as the report names them.
_HELD_BY: Final = {
    PAYOUTS_IN_TRANSIT: "pending and in_transit",
    PAID_OUT: "paid",
}

_TOTALS = """
WITH totals AS (
    SELECT account_id, currency,
        CASE WHEN status = :paid THEN :paid_out ELSE :in_transit END AS name,
        sum(amount) AS total
    FROM payouts
    WHERE status IN (:pending, :in_transit_status, :paid) {scope}
    GROUP BY 1, 2, 3
),
others AS (
    SELECT la.account_id, la.currency, la.name, sum(lp.amount_minor) AS net
    FROM ledger_postings AS lp
    JOIN ledger_accounts AS la ON la.id = lp.ledger_account_id
    JOIN ledger_transactions AS lt ON lt.account_id = lp.account_id AND lt.id = lp.transaction_id
    WHERE la.name IN (:in_transit, :paid_out) AND lt.kind IN (:posted, :post_pending)
        AND {own} IS NOT TRUE {postings_scope}
    GROUP BY 1, 2, 3
),
held AS (
    SELECT account_id, currency, name, posted_balance_minor AS balance
    FROM ledger_accounts
    WHERE name IN (:in_transit, :paid_out) {scope}
)
SELECT account_id, currency, name, coalesce(held.balance, 0) AS balance,
    coalesce(totals.total, 0) AS total, coalesce(others.net, 0) AS others
FROM held
FULL JOIN totals USING (account_id, currency, name)
LEFT JOIN others USING (account_id, currency, name)
WHERE coalesce(held.balance, 0) <> coalesce(totals.total, 0) + coalesce(others.net, 0)
ORDER BY 1, 2, 3
"""


async def payout_total_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    own, own_params = written_by_ledger(
        "lp.transaction_id", "lt.metadata", ("payout", "paid", "failure", "cancel")
    )
    scoped = account_id is not None
    query = _TOTALS.format(
        own=own,
        scope="AND account_id = :account_id" if scoped else "",
        postings_scope="AND lp.account_id = :account_id" if scoped else "",
    )
    params = {
        **own_params,
        "account_id": account_id,
        "in_transit": PAYOUTS_IN_TRANSIT,
        "paid_out": PAID_OUT,
        "pending": PayoutStatus.PENDING.value,
        "in_transit_status": PayoutStatus.IN_TRANSIT.value,
        "paid": PayoutStatus.PAID.value,
        "posted": TransactionKind.POSTED.value,
        "post_pending": TransactionKind.POST_PENDING.value,
    }
    found: list[Difference] = []
    for row in await db.execute(text(query), params):
        balance, total, others = int(row.balance), int(row.total), int(row.others)
        besides = f" ({others} of it posted by other than payouts)" if others else ""
        found.append(
            Difference(
                kind=DifferenceKind.PAYOUT_MISMATCH,
                account_id=row.account_id,
                currency=row.currency,
                expected_minor=balance - others,
                actual_minor=total,
                description=f"{_HELD_BY[row.name]} payouts in {row.currency} add up to "
                f"{total}, {row.name} holds {balance}{besides}",
                ledger_account=row.name,
            )
        )
    return found
