"""The card network's fee as the ledger books it, read back for reconciliation.

A capture's network fee is posted with the capture (`postings.record_charge_captured`): in
"ch:capture" itself, or in "ch:fee" when the capture posts an authorization. Which captures
were booked with one is recorded in "ch:capture"'s metadata under `BOOKED_KEY`, fee 0
included. Captures booked before network fees were recorded have no such key and no
network_fees legs: they are not backfilled, since what the acquirer withheld from each is
known only from its settlement rows, and rewriting booked history would break the hash chain.
Reconciliation leaves their fee unchecked instead (`booked_network_fees` omits them).
"""

from collections.abc import Collection
from typing import Final

from sqlalchemy import and_, func, literal_column, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.chart import NETWORK_FEES
from remit.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions

BOOKED_KEY: Final = "network_fee"

# How many charges `booked_network_fees` asks about in one statement (two ids each).
_CHARGES_PER_QUERY: Final = 500


def capture_transaction_ids(charge_id: str) -> tuple[str, str]:
    """The ledger transactions a charge's capture posts: the capture, and its fee."""
    return f"{charge_id}:capture", f"{charge_id}:fee"


async def booked_network_fees(
    db: AsyncConnection, charges: Collection[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The network fee the ledger booked for each (account id, charge id) whose capture was
    booked with one, as a positive amount; captures booked before network fees were recorded
    are left out."""
    t, p, la = ledger_transactions.c, ledger_postings.c, ledger_accounts.c
    ordered = sorted(charges)
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(ordered), _CHARGES_PER_QUERY):
        batch = ordered[start : start + _CHARGES_PER_QUERY]
        keys = [
            (account_id, transaction_id)
            for account_id, charge_id in batch
            for transaction_id in capture_transaction_ids(charge_id)
        ]
        network_legs = func.coalesce(
            func.sum(p.amount_minor).filter(la.name == NETWORK_FEES), literal_column("0")
        )
        query = (
            select(
                t.account_id,
                t.id,
                t.metadata.has_key(BOOKED_KEY).label("booked"),
                network_legs.label("network_legs"),
            )
            .select_from(
                ledger_transactions.outerjoin(
                    ledger_postings,
                    and_(p.account_id == t.account_id, p.transaction_id == t.id),
                ).outerjoin(ledger_accounts, la.id == p.ledger_account_id)
            )
            .where(tuple_(t.account_id, t.id).in_(keys))
            .group_by(t.account_id, t.id)
        )
        legs: dict[tuple[str, str], int] = {}
        booked: set[tuple[str, str]] = set()
        for row in await db.execute(query):
            charge_id, _, step = row.id.rpartition(":")
            key = (row.account_id, charge_id)
            legs[key] = legs.get(key, 0) + int(row.network_legs)
            if step == "capture" and row.booked:
                booked.add(key)
        # The legs are negative (the platform's cost); the acquirer reports fees as positive.
        found |= {key: -legs[key] for key in booked}
    return found
