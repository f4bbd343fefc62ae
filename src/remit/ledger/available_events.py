"""The `balance.available` event: Stripe's "Occurs whenever your Stripe balance has been updated
(e.g., when a charge is available to be paid out)", not sent for negative transactions.

Recorded in the transaction of each move that adds to the available balance: funds released
from pending (the worker's release job, or an operator's retry of a set-aside release), a
capture made available at once (pm_card_bypassPending), a canceled or failed payout's funds
coming back, a failed or canceled refund's money coming back (its hold released, or its posting
reversed), a won dispute's reinstatement. At most one per account per transaction: a batch
that moves several of an account's funds records it once, after the last of them. Moves that
take from the available balance (a payout, a refund, a dispute's withdrawal) record none.

It is recorded after the move's ledger posting, so that it shows the balance the move made:
the posting holds the account's chain lock until the commit, so the balance read under it is
the one the transaction commits, and the event's writes are the transaction's last.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.ledger import events
from remit.ledger.accounts import account_for
from remit.ledger.balances import balance_of, read_balance_accounts
from remit.ledger.messages import balance_message


async def announce_available(db: AsyncConnection, account_id: str, now: datetime) -> None:
    """Record the `balance.available` event of `account_id`, whose funds just moved into its
    available balance, with the balance as it now is."""
    accounts = await read_balance_accounts(db, account_id)
    # After a move the account has ledger accounts, whose currencies the balance shows: the
    # default currency, shown only by an account without any, is then not read (one statement
    # less in the transaction of the move).
    default = (
        accounts[0].currency if accounts else (await account_for(db, account_id)).default_currency
    )
    balance = balance_of(accounts, default)
    await events.record_event(
        db,
        account_id=account_id,
        type=events.BALANCE_AVAILABLE,
        message=balance_message(balance),
        object_id=None,
        now=now,
    )
