"""When a long-lived database session forgets its cached plans: at a few spaced uses.

PostgreSQL plans a statement a session runs often once and keeps the plan: prepared
statements, foreign key checks and PL/pgSQL functions alike. A session that began on a young
database planned against tables of a few rows, where one index looks as good as another.
Measured at 16 payments in flight from a fresh database, a kept session went on reading an
account's ledger transactions through the index on their sequence to find one by its id, a
little further with every payment (1,663 index entries read per payment after 1,000 payments,
4,897 after 2,000). Plans made after the tables have grown are right, so a session that
outlives many units of work (`remit.storage.kept`, `remit.storage.direct`) sends
`DISCARD PLANS` at geometrically spaced uses: one re-planning each time, and nothing after the
last. `DISCARD PLANS` keeps the session's prepared statements; only their plans go.
"""

from typing import Final

from remit.storage import fastsql

DISCARD_PLANS: Final = "DISCARD PLANS"
_DISCARD_PLANS = fastsql.Statement(DISCARD_PLANS)

# Uses after which a session forgets its plans.
REPLAN_AFTER_USES: frozenset[int] = frozenset({25, 100, 400, 1_600, 6_400, 25_600, 102_400})


def due(uses: int) -> bool:
    """Whether a session's `uses`-th unit of work should start by forgetting its plans."""
    return uses in REPLAN_AFTER_USES


async def forget_plans_if_due(db: fastsql.Db, uses: int) -> None:
    """Start a session's `uses`-th unit of work by forgetting its plans if it is one of the
    spaced ones."""
    if due(uses):
        await _DISCARD_PLANS.run(db, {})
