"""Which balance transactions an automatic payout pays out.

An automatic payout takes the available balance of a currency: all of it, or, in a currency
paid out in whole units, all of it rounded down to a whole unit (below). Listing balance
transactions with `payout=po_...` answers the rows it paid out. When it paid out whole rows,
they sum to its amount (with the payout's own row, to zero). A row it paid out only in part is
one it keeps (below): its rows then sum to more than its amount, and a later payout that pays
out the part of a whole unit it left lists rows that sum to less than its own. Its candidates
are the available rows no payout has taken yet, funds a failed automatic payout returned
included (`payout_failure` rows stay unlinked for that reason), and so is a refund still
waiting for the acquirer: its hold took the money out of what the payout could take, and its
row (the same once the refund posts) is available from the refund's creation.

A manual payout takes money without saying which rows it takes; its own rows (the payout and,
if the funds came back, the failure or cancel) are linked to it and net to zero when it does
not pay. Manual payouts are taken to draw the oldest funds first, so the oldest candidates
they account for are left out of the automatic payout. Should their amounts end in the middle
of a row, the automatic payout keeps that row, the least it can keep while still covering its
whole amount. So does one that pays out less than the whole balance because its currency is
paid out in whole units (`payout_amount_step`: 970.70 huf is paid out as 970 huf): the 0.70
left available goes out with a later payout, in a row this one keeps.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.objects import Payout


def paid_out_rows(candidates: Sequence[tuple[str, int]], amount: int) -> list[str]:
    """The newest candidates (id, net), given oldest first, that pay out `amount`: the longest
    run of newest rows summing to it exactly, else the shortest summing to at least it, else
    all of them."""
    suffix_sums = [0] * (len(candidates) + 1)
    for index in range(len(candidates) - 1, -1, -1):
        suffix_sums[index] = suffix_sums[index + 1] + candidates[index][1]
    exact = [k for k in range(len(candidates) + 1) if suffix_sums[k] == amount]
    covering = [k for k in range(len(candidates) + 1) if suffix_sums[k] >= amount]
    start = exact[0] if exact else (covering[-1] if covering else 0)
    return [txn_id for txn_id, _ in candidates[start:]]


async def link_paid_out(db: AsyncConnection, payout: Payout, *, now: datetime) -> int:
    """Link to a just-created automatic payout the rows it pays out; returns how many."""
    repo = BalanceRepository(db)
    candidates = await repo.unlinked_available(payout.account_id, payout.currency, up_to=now)
    return await repo.link_to_payout(
        payout.account_id, payout.id, paid_out_rows(candidates, payout.amount)
    )
