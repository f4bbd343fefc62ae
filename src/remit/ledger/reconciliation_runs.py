"""The stored reconciliation runs at a glance (`remit reconciliations`, ListReconciliations): which
day and scope each covered, when it started and finished, whether it was partial or superseded,
and how many items it counted of each status; not the items themselves.

A run's counts are read from the columns stored with it, so that listing a hundred runs never
reads their rows.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.errors import invalid, not_found
from remit.ledger.reconcile import Reconciliation, RowStatus
from remit.ledger.tables import reconciliations

DEFAULT_LIST_LIMIT: Final = 30
MAX_LIST_LIMIT: Final = 100


@dataclass(frozen=True)
class ReconciliationRun:
    id: str
    date: str
    # The account the run was limited to; None for a run over every account.
    account_id: str | None
    # None for runs stored before remit recorded it (core migration 0038).
    started_at: datetime | None
    finished_at: datetime
    partial: bool
    superseded_by: str | None
    counts: Mapping[RowStatus, int]


def run_of(result: Reconciliation) -> ReconciliationRun:
    return ReconciliationRun(
        id=result.id,
        date=result.date,
        account_id=result.account_id,
        started_at=result.started_at,
        finished_at=result.created_at,
        partial=result.partial,
        superseded_by=result.superseded_by,
        counts={status: result.count(status) for status in RowStatus},
    )


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIST_LIMIT}.", "limit")


async def recent_runs(db: AsyncConnection, limit: int) -> tuple[list[ReconciliationRun], bool]:
    """The `limit` runs that finished last, the latest first, and whether older ones exist."""
    check_limit(limit)
    r = reconciliations.c
    found = list(
        await db.execute(
            select(reconciliations).order_by(r.created_at.desc(), r.id.desc()).limit(limit + 1)
        )
    )
    return [_run_of_record(row) for row in found[:limit]], len(found) > limit


async def stored_run(db: AsyncConnection, reconciliation_id: str) -> ReconciliationRun:
    """The run `reconciliation_id`, without its rows; NOT_FOUND when none is stored."""
    found = (
        await db.execute(select(reconciliations).where(reconciliations.c.id == reconciliation_id))
    ).first()
    if found is None:
        raise not_found("reconciliation", reconciliation_id)
    return _run_of_record(found)


def _run_of_record(row: Any) -> ReconciliationRun:
    return ReconciliationRun(
        id=row.id,
        date=row.date,
        account_id=row.account_id,
        started_at=row.started_at,
        finished_at=row.created_at,
        partial=row.partial,
        superseded_by=row.superseded_by,
        # Each status has its count column (`remit.ledger.reconcile.store`).
        counts={status: getattr(row, f"{status.value}_count") for status in RowStatus},
    )
