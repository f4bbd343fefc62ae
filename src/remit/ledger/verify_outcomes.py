"""`remit ledger verify`: the outcome columns of ledger transactions against the hash chain.

A pending transaction's `pending_status` and `resolved_by`, and a posted one's `reversed_by`,
are left out of its hash: they change after it is written. Core migration
0064_ledger_outcomes_forward lets them move only forward, once, but only to *some* resolving
transaction: a statement that marks an open reservation voided by a transaction that does not
release it (and zeroes the pending balances to match) would pass every other check, and free
held money (a refund's hold, for a payout). So the outcome is derived again from what the
chain does cover: the POST_PENDING or VOID_PENDING transaction naming the pending one in its
hashed `pending_transaction_id`, and the reversal naming the original in its hashed
`metadata.reverses`.

Each check is one set-based query over the account's transactions (hash joins, no per-row
round trip), returning only what disagrees.
"""

from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.own_transactions import written_by_ledger
from remit.ledger.verify_differences import Difference, DifferenceKind

# The reversals the ledger itself posts (`postings.record_refund_failed`), told by their id and
# metadata (`own_transactions.py`): another transaction with `metadata.reverses` may be a
# generic posting that only says so, under any id before such ids were refused.
_LEDGER_REVERSAL: Final = written_by_ledger("r.id", "r.metadata", ("refund_failure",))

_OUTCOMES = """
SELECT p.account_id, p.id, p.kind, p.pending_status, p.resolved_by,
    count(r.id) AS resolutions, min(r.id) AS resolution, min(r.kind) AS resolution_kind
FROM ledger_transactions AS p
LEFT JOIN ledger_transactions AS r
    ON r.account_id = p.account_id AND r.pending_transaction_id = p.id
    AND r.kind IN ('post_pending', 'void_pending')
WHERE (p.kind = 'pending' OR p.pending_status IS NOT NULL OR p.resolved_by IS NOT NULL)
    {scope}
GROUP BY p.account_id, p.id
HAVING NOT (p.kind = 'pending' AND (
    (count(r.id) = 0 AND p.pending_status = 'open' AND p.resolved_by IS NULL)
    OR (count(r.id) = 1 AND p.resolved_by = min(r.id)
        AND p.pending_status
            = CASE min(r.kind) WHEN 'post_pending' THEN 'posted' ELSE 'voided' END)
))
ORDER BY p.account_id, p.id
"""

# Resolutions whose pending transaction is not one: they moved balances no reservation held.
_ORPHAN_RESOLUTIONS = """
SELECT r.account_id, r.id, r.kind, r.pending_transaction_id
FROM ledger_transactions AS r
LEFT JOIN ledger_transactions AS p
    ON p.account_id = r.account_id AND p.id = r.pending_transaction_id
WHERE r.kind IN ('post_pending', 'void_pending') AND (p.id IS NULL OR p.kind <> 'pending')
    {scope}
ORDER BY r.account_id, r.id
"""

_REVERSED_BY = """
SELECT x.account_id, x.id, x.kind, x.reversed_by, r.id AS found, r.kind AS found_kind,
    r.metadata ->> 'reverses' AS names
FROM ledger_transactions AS x
LEFT JOIN ledger_transactions AS r ON r.account_id = x.account_id AND r.id = x.reversed_by
WHERE x.reversed_by IS NOT NULL
    AND (r.id IS NULL OR r.kind <> 'posted' OR x.kind NOT IN ('posted', 'post_pending')
         OR (r.metadata ->> 'reverses') IS DISTINCT FROM x.id)
    {scope}
ORDER BY x.account_id, x.id
"""

_UNRECORDED_REVERSALS = """
SELECT r.account_id, r.id, r.metadata ->> 'reverses' AS reverses, x.id AS found,
    x.reversed_by
FROM ledger_transactions AS r
LEFT JOIN ledger_transactions AS x
    ON x.account_id = r.account_id AND x.id = r.metadata ->> 'reverses'
WHERE r.kind = 'posted' AND {own}
    AND x.reversed_by IS DISTINCT FROM r.id
    {scope}
ORDER BY r.account_id, r.id
"""


def _scoped(query: str, alias: str, account_id: str | None) -> str:
    return query.format(
        scope=f"AND {alias}.account_id = :account_id" if account_id else "",
        own=_LEDGER_REVERSAL[0],
    )


def _finding(kind: DifferenceKind, account_id: str, transaction_id: str, why: str) -> Difference:
    return Difference(
        kind=kind,
        account_id=account_id,
        currency="",
        expected_minor=0,
        actual_minor=0,
        description=why,
        transaction_id=transaction_id,
    )


def _outcome_problem(
    kind: str, status: str | None, resolved_by: str | None, count: int, found: str | None, how: str
) -> str:
    if kind != "pending":
        return (
            f"a {kind} transaction carries a pending outcome ({status}, resolved by {resolved_by})"
        )
    if count > 1:
        return f"{count} transactions post or void it; a pending transaction is resolved once"
    if count == 0:
        return (
            f"marked {status} (resolved by {resolved_by}), but no transaction posts or voids "
            "it: it is still open"
        )
    expected = "posted" if how == "post_pending" else "voided"
    return (
        f"marked {status} (resolved by {resolved_by}), but {found} ({how}) resolves it: "
        f"expected {expected} by {found}"
    )


async def pending_outcome_mismatches(
    db: AsyncConnection, account_id: str | None
) -> list[Difference]:
    """Each pending transaction's outcome is the one its resolution in the chain gives it: open
    with none; posted or voided by exactly one, which `resolved_by` names."""
    params = {"account_id": account_id}
    found = [
        _finding(
            DifferenceKind.PENDING_OUTCOME_MISMATCH,
            row.account_id,
            row.id,
            f"{row.id}: "
            + _outcome_problem(
                row.kind,
                row.pending_status,
                row.resolved_by,
                int(row.resolutions),
                row.resolution,
                row.resolution_kind,
            ),
        )
        for row in await db.execute(text(_scoped(_OUTCOMES, "p", account_id)), params)
    ]
    found += [
        _finding(
            DifferenceKind.PENDING_OUTCOME_MISMATCH,
            row.account_id,
            row.id,
            f"{row.id} ({row.kind}) resolves {row.pending_transaction_id}, which is not a "
            "pending transaction of the account",
        )
        for row in await db.execute(text(_scoped(_ORPHAN_RESOLUTIONS, "r", account_id)), params)
    ]
    return found


async def reversal_mismatches(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    """`reversed_by` names a posted transaction whose hashed `metadata.reverses` names this
    one; and every reversal the ledger posted is recorded on what it reverses."""
    params = {"account_id": account_id, **_LEDGER_REVERSAL[1]}
    found: list[Difference] = []
    for row in await db.execute(text(_scoped(_REVERSED_BY, "x", account_id)), params):
        if row.found is None:
            why = f"marked reversed by {row.reversed_by}, which does not exist"
        elif row.kind not in ("posted", "post_pending"):
            why = f"a {row.kind} transaction marked reversed by {row.reversed_by}"
        else:
            why = (
                f"marked reversed by {row.reversed_by} ({row.found_kind}), which reverses "
                f"{row.names or 'nothing'}"
            )
        found.append(
            _finding(DifferenceKind.REVERSAL_MISMATCH, row.account_id, row.id, f"{row.id}: {why}")
        )
    for row in await db.execute(text(_scoped(_UNRECORDED_REVERSALS, "r", account_id)), params):
        if row.found is None:
            why = f"reverses {row.reverses}, which does not exist"
        else:
            why = f"reverses {row.reverses}, which is marked reversed by {row.reversed_by}"
        found.append(
            _finding(DifferenceKind.REVERSAL_MISMATCH, row.account_id, row.id, f"{row.id} {why}")
        )
    return found
