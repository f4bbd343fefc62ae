"""`remit ledger verify`: every posting moves money on a ledger account of its own merchant.

A posting names its ledger account by id alone, and the hash covers the account's name and
currency, not which merchant owns the ledger_accounts row: whoever can write the database
could repoint a leg from one merchant's wallet/usd to another's and shift the two stored
balances to match, and every per-transaction sum would still balance. The chain check reads
postings through their own merchant's ledger accounts only (such a leg drops out of the
recomputed hash); this reports each one by name, on either merchant's verify.
"""

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger.tables import ledger_accounts, ledger_postings
from remit.ledger.verify_differences import Difference, DifferenceKind


async def foreign_ledger_accounts(db: AsyncConnection, account_id: str | None) -> list[Difference]:
    p, la = ledger_postings.c, ledger_accounts.c
    query = (
        select(
            p.account_id,
            p.transaction_id,
            p.amount_minor,
            la.account_id.label("owner"),
            la.name,
            la.currency,
        )
        .join(ledger_accounts, la.id == p.ledger_account_id)
        .where(la.account_id != p.account_id)
        .order_by(p.account_id, p.transaction_id, p.id)
    )
    if account_id is not None:
        query = query.where(or_(p.account_id == account_id, la.account_id == account_id))
    return [
        Difference(
            kind=DifferenceKind.FOREIGN_LEDGER_ACCOUNT,
            account_id=row.account_id,
            transaction_id=row.transaction_id,
            ledger_account=row.name,
            currency=row.currency,
            expected_minor=0,
            actual_minor=int(row.amount_minor),
            description=f"a posting of {row.transaction_id} moves {row.amount_minor} "
            f"{row.currency} on {row.owner}'s {row.name}",
        )
        for row in await db.execute(query)
    ]
