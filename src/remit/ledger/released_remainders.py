"""What the ledger released of each captured charge's authorization, read back for
reconciliation.

An authorization reserves its amount in a pending transaction, "ch:authorization"
(`postings.record_authorization`); the capture posts what it captured and releases the rest
(`journal.post_pending`). So what a capture released is the reservation less the captured
amount. A charge captured without an authorization (captured at once) reserved nothing and
released nothing. The acquirer's settlement row for the capture says what it released
(`remit.acquirer.domain.Operation.released_minor`); reconciliation compares the two.
"""

from collections.abc import Collection
from typing import Final

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.postings import authorization_id_for
from remit.ledger.tables import ledger_postings

# How many charges `reserved_amounts` asks about in one statement.
_CHARGES_PER_QUERY: Final = 1000


async def reserved_amounts(
    db: AsyncConnection, charges: Collection[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """The amount each (account id, charge id)'s authorization reserved, for the charges that
    were authorized before they were captured; the others are left out."""
    p = ledger_postings.c
    ordered = sorted(charges)
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(ordered), _CHARGES_PER_QUERY):
        by_transaction = {
            (account_id, authorization_id_for(charge_id)): (account_id, charge_id)
            for account_id, charge_id in ordered[start : start + _CHARGES_PER_QUERY]
        }
        # The reservation's legs are acquirer_clearing -amount and pending +amount: the
        # positive leg is the amount (a zero-amount authorization is refused).
        rows = await db.execute(
            select(p.account_id, p.transaction_id, p.amount_minor).where(
                tuple_(p.account_id, p.transaction_id).in_(list(by_transaction)),
                p.amount_minor > 0,
            )
        )
        for row in rows:
            charge = by_transaction[(row.account_id, row.transaction_id)]
            found[charge] = found.get(charge, 0) + int(row.amount_minor)
    return found


def released_by_capture(
    charge: tuple[str, str], captured: int, reserved: dict[tuple[str, str], int]
) -> int:
    """What the capture of `captured` of `charge` released of its authorization."""
    held = reserved.get(charge)
    return 0 if held is None else held - captured
