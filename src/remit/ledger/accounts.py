"""The merchant account a ledger call names, or the ledger's `not_found` naming `account`."""

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.accounts.domain import Account
from remit.accounts.repository import SqlAccountRepository
from remit.core.errors import not_found


async def account_for(db: AsyncConnection, account_id: str) -> Account:
    account = await SqlAccountRepository(db).get_account(account_id)
    if account is None:
        raise not_found("account", account_id, param="account")
    return account
