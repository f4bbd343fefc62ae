"""`remit ledger verify`: every ledger transaction Stripe shows as a balance transaction has one.

`verify_balance_transactions` holds each balance transaction to the ledger transaction it
names, and Stripe's view check (`verify`) sums their nets per balance: a deleted row is found
by the sums unless its net is 0 (a charge whose fee took all of it), or unless two rows that
net to zero went together (a payout and its cancel). Here the ledger's side is read: the
transactions whose ids end in a step that writes a balance transaction (`postings.py`,
`payouts.py`) must each be named by one:

- a capture `ch:capture`, a refund `re:refund`, a refund's failure after it posted
  `re:refund_failure`, a payout `po:payout` and its return `po:cancel` or `po:failure`, a
  dispute's withdrawal `dp:dispute` and a won dispute's reinstatement `dp:dispute_reversal`:
  always;
- a refund's hold `re:refund_hold`: while it is open, the refund's row names it; once the
  refund posts, the row names the refund `re:refund` instead (checked as that one);
- a hold's release `re:refund_release`: when the refund failed or was canceled before it
  posted, its refund_failure row names it; a release made by the refund's posting has none.

Holds released before core migration 0041 showed no balance transaction, and neither did
their release: a released hold is held to a row only when its release shows one, and a
release only when its hold does, so such a pair (or both rows of a later pair deleted
together, which nets to zero) is not told apart from a legitimate one.

One set-based query; ids are matched by pattern, the suffixes bound (text() would read
":refund" in a literal as a parameter).
"""

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.own_transactions import written_by_ledger
from remit.ledger.verify_balance_transactions import STEPS
from remit.ledger.verify_differences import Difference, DifferenceKind

_SHOWN_STEPS: Final = sorted({step for steps in STEPS.values() for step in steps})
_HOLD_OR_RELEASE: Final = ":(refund_hold|refund_release)$"

# One scan of each table: the anti-join finds the transactions no row names (normally none),
# and only those of a refund's hold or release look further, by key, at the refund's posting
# and at the other of the pair's rows.
_MISSING = """
SELECT t.account_id, t.id, t.pending_status
FROM ledger_transactions AS t
WHERE {own} {scope}
    AND NOT EXISTS (
        SELECT FROM balance_transactions AS own
        WHERE own.account_id = t.account_id AND own.ledger_transaction_id = t.id
    )
    AND (t.id !~ :hold_or_release OR (
        NOT EXISTS (
            SELECT FROM ledger_transactions AS posted
            WHERE posted.account_id = t.account_id
                AND posted.id = regexp_replace(t.id, :hold_or_release, :refund_step)
        )
        AND (t.pending_status = 'open' OR EXISTS (
            SELECT FROM balance_transactions AS partner
            WHERE partner.account_id = t.account_id
                AND partner.ledger_transaction_id = regexp_replace(
                    t.id, :hold_or_release,
                    CASE WHEN t.id ~ :hold_end THEN :release_step ELSE :hold_step END
                )
        ))
    ))
ORDER BY t.account_id, t.id
"""


def _why(transaction_id: str, pending_status: str | None) -> str:
    if transaction_id.endswith(":refund_hold"):
        state = "still open" if pending_status == "open" else "released with a refund_failure row"
        return f"{transaction_id}: a refund hold {state}, but no balance transaction shows it"
    return f"{transaction_id}: no balance transaction shows it"


async def missing_balance_transactions(
    db: AsyncConnection, account_id: str | None
) -> list[Difference]:
    own, own_params = written_by_ledger("t.id", "t.metadata", _SHOWN_STEPS)
    params = {
        **own_params,
        "account_id": account_id,
        "hold_or_release": _HOLD_OR_RELEASE,
        "hold_end": ":refund_hold$",
        "refund_step": ":refund",
        "hold_step": ":refund_hold",
        "release_step": ":refund_release",
    }
    scope = "AND t.account_id = :account_id" if account_id is not None else ""
    return [
        Difference(
            kind=DifferenceKind.MISSING_BALANCE_TRANSACTION,
            account_id=row.account_id,
            currency="",
            expected_minor=0,
            actual_minor=0,
            description=_why(row.id, row.pending_status),
            transaction_id=row.id,
        )
        for row in await db.execute(text(_MISSING.format(own=own, scope=scope)), params)
    ]
