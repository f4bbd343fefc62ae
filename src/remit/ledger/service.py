"""Ledger use cases behind LedgerService. Each public method is one unit of work.

Other services do not come through here to move money: they call `remit.ledger.postings`
inside their own transaction. This service answers the RPCs: generic postings on ledger
accounts of the caller's choosing, balances, balance transactions, payouts, verification and
reconciliation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.secrets import Secret
from remit.core.settlement_days import is_partial, settlement_day
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.ledger import (
    journal,
    payouts,
    reconcile,
    reconciliation_pages,
    reconciliation_runs,
    settlement_report,
)
from remit.ledger.accounts import account_for
from remit.ledger.anchoring import CheckpointFile, write_checkpoints
from remit.ledger.balance_range import balances_in_range
from remit.ledger.balance_repository import BalanceRepository, TimeRange
from remit.ledger.balances import read_balance
from remit.ledger.domain import (
    LedgerAccount,
    LedgerTransaction,
    Posting,
    PostResult,
    TransactionRequest,
    currency_filter,
)
from remit.ledger.objects import (
    Balance,
    BalanceTransaction,
    BalanceTransactionType,
    NewPayout,
    Payout,
    PayoutMethod,
    PayoutStatus,
)
from remit.ledger.reconcile import AcquirerAnswer, Reconciliation, RowStatus, SettledItem
from remit.ledger.reconciliation_pages import RowCursor, RowsPage
from remit.ledger.reconciliation_runs import ReconciliationRun
from remit.ledger.repository import JournalRepository
from remit.ledger.reserved import refuse_derived_id, refuse_system_accounts
from remit.ledger.verify import VerifyReport, verify_ledger
from remit.payments.keyed import Done, Keyed, Replay, run_keyed
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc

MAX_LIST_LIMIT = 100
LOOKUP_TIMEOUT_S = 10.0


def _check_limit(limit: int, starting_after: str | None, ending_before: str | None) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid("limit must be between 1 and 100.", "limit")
    if starting_after is not None and ending_before is not None:
        raise invalid("starting_after and ending_before cannot be used together.")


class LedgerService:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock | None = None,
        acquirer: acquirer_pb2_grpc.AcquirerServiceAsyncStub | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        self._acquirer = acquirer

    # --- journal ----------------------------------------------------------------------------

    async def post_transaction(self, account_id: str, request: TransactionRequest) -> PostResult:
        refuse_derived_id(request.transaction_id, "transaction_id")
        refuse_system_accounts(request.postings, "postings")
        with balances_in_range():
            async with self._engine.begin() as db:
                await account_for(db, account_id)
                return await journal.post(db, account_id, request, now=self._clock.now())

    async def post_pending(
        self,
        account_id: str,
        *,
        pending_transaction_id: str,
        transaction_id: str,
        postings: Sequence[Posting],
        metadata: dict[str, str],
    ) -> PostResult:
        refuse_derived_id(pending_transaction_id, "pending_transaction_id")
        refuse_derived_id(transaction_id, "transaction_id")
        refuse_system_accounts(postings, "postings")
        with balances_in_range():
            async with self._engine.begin() as db:
                pending = await JournalRepository(db).get_transaction(
                    account_id, pending_transaction_id
                )
                if pending is not None:
                    refuse_system_accounts(pending.postings, "pending_transaction_id")
                return await journal.post_pending(
                    db,
                    account_id,
                    pending_transaction_id=pending_transaction_id,
                    transaction_id=transaction_id,
                    postings=postings,
                    metadata=metadata,
                    now=self._clock.now(),
                )

    async def void_pending(
        self,
        account_id: str,
        *,
        pending_transaction_id: str,
        transaction_id: str,
        metadata: dict[str, str],
    ) -> PostResult:
        refuse_derived_id(pending_transaction_id, "pending_transaction_id")
        refuse_derived_id(transaction_id, "transaction_id")
        async with self._engine.begin() as db:
            pending = await JournalRepository(db).get_transaction(
                account_id, pending_transaction_id
            )
            if pending is not None:
                refuse_system_accounts(pending.postings, "pending_transaction_id")
            return await journal.void_pending(
                db,
                account_id,
                pending_transaction_id=pending_transaction_id,
                transaction_id=transaction_id,
                metadata=metadata,
                now=self._clock.now(),
            )

    async def get_transaction(self, account_id: str, transaction_id: str) -> LedgerTransaction:
        async with self._engine.begin() as db:
            found = await JournalRepository(db).get_transaction(account_id, transaction_id)
        if found is None:
            raise not_found("ledger transaction", transaction_id)
        return found

    async def get_ledger_account(self, account_id: str, name: str, currency: str) -> LedgerAccount:
        async with self._engine.begin() as db:
            found = await JournalRepository(db).get_ledger_account(account_id, name, currency)
        if found is None:
            raise not_found("ledger account", f"{name}/{currency}", param="name")
        return found

    async def list_ledger_accounts(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
        name_prefix: str | None,
        currency: str | None,
    ) -> tuple[list[LedgerAccount], bool]:
        _check_limit(limit, starting_after, ending_before)
        currency = currency_filter(currency)
        async with self._engine.begin() as db:
            repo = JournalRepository(db)

            async def cursor(la_id: str | None, param: str) -> tuple[str, str] | None:
                if la_id is None:
                    return None
                anchor = await repo.ledger_account_by_id(account_id, la_id)
                if anchor is None:
                    raise not_found("ledger account", la_id, param=param)
                return anchor.name, anchor.currency

            return await repo.list_ledger_accounts(
                account_id,
                limit=limit,
                after=await cursor(starting_after, "starting_after"),
                before=await cursor(ending_before, "ending_before"),
                name_prefix=name_prefix,
                currency=currency,
            )

    # --- balance ----------------------------------------------------------------------------

    async def get_balance(self, account_id: str) -> Balance:
        async with self._engine.begin() as db:
            account = await account_for(db, account_id)
            return await read_balance(db, account_id, account.default_currency)

    async def get_balance_transaction(self, account_id: str, txn_id: str) -> BalanceTransaction:
        async with self._engine.begin() as db:
            found = await BalanceRepository(db).get_balance_transaction(account_id, txn_id)
        if found is None:
            raise not_found("balance transaction", txn_id)
        return found

    async def list_balance_transactions(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: TimeRange | None = None,
        payout_id: str | None = None,
        source_id: str | None = None,
        type: BalanceTransactionType | None = None,
        currency: str | None = None,
    ) -> tuple[list[BalanceTransaction], bool]:
        _check_limit(limit, starting_after, ending_before)
        currency = currency_filter(currency)
        async with self._engine.begin() as db:
            repo = BalanceRepository(db)

            async def cursor(txn_id: str | None, param: str) -> tuple[datetime, str] | None:
                if txn_id is None:
                    return None
                anchor = await repo.get_balance_transaction(account_id, txn_id)
                if anchor is None:
                    raise not_found("balance transaction", txn_id, param=param)
                return anchor.created_at, anchor.id

            return await repo.list_balance_transactions(
                account_id,
                limit=limit,
                starting_after=await cursor(starting_after, "starting_after"),
                ending_before=await cursor(ending_before, "ending_before"),
                created=created or TimeRange(),
                payout_id=payout_id,
                source_id=source_id,
                type=type,
                currency=currency,
            )

    # --- payouts ----------------------------------------------------------------------------

    async def create_payout(
        self,
        account_id: str,
        *,
        amount: int,
        currency: str,
        description: str | None = None,
        method: PayoutMethod = PayoutMethod.STANDARD,
        statement_descriptor: str | None = None,
        metadata: dict[str, str] | None = None,
        destination: str | None = None,
        source_type: str = "card",
    ) -> Payout:
        new = NewPayout(
            amount=amount,
            currency=currency,
            description=description,
            method=method,
            statement_descriptor=statement_descriptor,
            metadata=metadata,
            destination=destination,
            source_type=source_type,
        )
        async with self._engine.begin() as db:
            return await self._pay_out(db, account_id, new)

    async def create_payout_once(
        self,
        account_id: str,
        keyed: Keyed[Payout] | None,
        new: NewPayout,
    ) -> Done[Payout] | Replay:
        """A payout under the call's idempotency key (`payments.keyed`): a retry with the key
        replays the first answer instead of paying out again."""
        return await run_keyed(
            self._engine, keyed, self._clock.now(), lambda db: self._pay_out(db, account_id, new)
        )

    async def _pay_out(self, db: AsyncConnection, account_id: str, new: NewPayout) -> Payout:
        await account_for(db, account_id)
        return await payouts.create_payout(
            db,
            account_id=account_id,
            amount=new.amount,
            currency=new.currency,
            now=self._clock.now(),
            description=new.description,
            method=new.method,
            statement_descriptor=new.statement_descriptor,
            metadata=new.metadata,
            destination=new.destination,
            source_type=new.source_type,
        )

    async def get_payout(self, account_id: str, payout_id: str) -> Payout:
        async with self._engine.begin() as db:
            found = await BalanceRepository(db).get_payout(account_id, payout_id)
        if found is None:
            raise not_found("payout", payout_id)
        return found

    async def list_payouts(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: TimeRange | None = None,
        arrival_date: TimeRange | None = None,
        status: PayoutStatus | None = None,
        destination: str | None = None,
    ) -> tuple[list[Payout], bool]:
        _check_limit(limit, starting_after, ending_before)
        async with self._engine.begin() as db:
            repo = BalanceRepository(db)

            async def cursor(payout_id: str | None, param: str) -> tuple[datetime, str] | None:
                if payout_id is None:
                    return None
                anchor = await repo.get_payout(account_id, payout_id)
                if anchor is None:
                    raise not_found("payout", payout_id, param=param)
                return anchor.created_at, anchor.id

            return await repo.list_payouts(
                account_id,
                limit=limit,
                starting_after=await cursor(starting_after, "starting_after"),
                ending_before=await cursor(ending_before, "ending_before"),
                created=created or TimeRange(),
                arrival_date=arrival_date or TimeRange(),
                status=status,
                destination=destination,
            )

    async def cancel_payout(
        self, account_id: str, payout_id: str, keyed: Keyed[Payout] | None = None
    ) -> Done[Payout] | Replay:
        now = self._clock.now()
        return await run_keyed(
            self._engine,
            keyed,
            now,
            lambda db: payouts.cancel_payout(
                db, account_id=account_id, payout_id=payout_id, now=now
            ),
        )

    async def update_payout(
        self,
        account_id: str,
        payout_id: str,
        *,
        set_keys: dict[str, str],
        unset_keys: list[str],
        clear: bool,
        keyed: Keyed[Payout] | None = None,
    ) -> Done[Payout] | Replay:
        now = self._clock.now()
        return await run_keyed(
            self._engine,
            keyed,
            now,
            lambda db: payouts.update_payout_metadata(
                db,
                account_id=account_id,
                payout_id=payout_id,
                set_keys=set_keys,
                unset_keys=unset_keys,
                clear=clear,
                now=now,
            ),
        )

    # --- verification and reconciliation ----------------------------------------------------

    async def verify(
        self, account_id: str | None = None, checkpoints: CheckpointFile | None = None
    ) -> VerifyReport:
        # The checkpoint file is opened, as far as it is written, before the snapshot begins:
        # every line checked then names a position committed before the snapshot. Lines the
        # worker appends later (a verification of a large ledger takes minutes) may name
        # positions committed after it, which the snapshot cannot hold: they are left to the
        # next verification, not skipped by position, which would hide a deleted tail.
        opened = None if checkpoints is None else await asyncio.to_thread(checkpoints.open)
        try:
            # One snapshot for every check, so concurrent postings cannot look like differences.
            async with self._engine.connect() as connection:
                db = await connection.execution_options(isolation_level="REPEATABLE READ")
                async with db.begin():
                    await _without_statement_timeout(db)
                    return await verify_ledger(
                        db, account_id=account_id, now=self._clock.now(), checkpoints=opened
                    )
        finally:
            if opened is not None:
                opened.close()

    async def checkpoint(
        self, path: Path, key: Secret[bytes], account_id: str | None = None
    ) -> int:
        """Append a checkpoint of every chain head (`account_id`'s only, when given) to
        `path`; returns how many."""
        return await write_checkpoints(
            self._engine, path, key, clock=self._clock, account_id=account_id
        )

    async def settlement_items(
        self, day: str, account_id: str | None, *, allow_partial: bool = False
    ) -> settlement_report.AcquirerReport:
        return await settlement_report.settled_items(
            self._require_acquirer(), day, account_id, allow_partial=allow_partial
        )

    def _require_acquirer(self) -> acquirer_pb2_grpc.AcquirerServiceAsyncStub:
        if self._acquirer is None:
            raise RemitError(
                message="Reconciliation needs the acquirer, and none is configured.",
                kind=ErrorKind.UNAVAILABLE,
                error_type="api_error",
            )
        return self._acquirer

    async def look_up(self, item: SettledItem, account_id: str | None) -> AcquirerAnswer:
        """What the acquirer holds under `item`'s reference, for a run over `account_id`
        (`settlement_report.answer_for`)."""
        acquirer = self._require_acquirer()
        try:
            reply = await acquirer.LookupOperation(
                acquirer_pb2.LookupOperationRequest(reference=item.reference),
                timeout=LOOKUP_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return settlement_report.answer_for(item, None, account_id)
            raise remit_error_from_rpc_error(error) from None
        return settlement_report.answer_for(item, reply.operation, account_id)

    async def reconcile(
        self, day: str, account_id: str | None = None, *, allow_partial: bool = False
    ) -> Reconciliation:
        """Reconcile the settlement day `day` (see `remit.ledger.reconcile` for which ledger
        items belong to it, and which days it refuses) and store the result as the day's."""
        started_at = self._clock.now()
        parsed = settlement_day(day, now=started_at, allow_partial=allow_partial)
        acquirer_report = await self.settlement_items(
            parsed.isoformat(), account_id, allow_partial=allow_partial
        )
        acquirer_side = acquirer_report.items
        async with self._engine.begin() as db:
            await _without_statement_timeout(db)
            recorded = await reconcile.ledger_items(db, parsed, account_id)
            recorded_elsewhen = await reconcile.recorded_on_other_days(
                db, recorded, acquirer_side, account_id
            )
        # Asked one by one, outside any transaction: normally none, or the few recorded just
        # after midnight or late, and the refunds that failed.
        answers = [
            (item, await self.look_up(item, account_id))
            for item in reconcile.not_in_report(recorded, acquirer_side)
        ]
        ledger_side = reconcile.ledger_side(parsed, recorded, recorded_elsewhen, answers)
        rows = reconcile.compare(ledger_side, acquirer_side)
        async with self._engine.begin() as db:
            return await reconcile.store(
                db,
                day=parsed,
                account_id=account_id,
                rows=rows,
                now=self._clock.now(),
                # Partial too when the acquirer says its report is: its day ends a grace
                # after midnight, once what it stamped on the day has committed.
                partial=is_partial(parsed, now=started_at) or acquirer_report.partial,
                started_at=started_at,
            )

    async def get_reconciliation(self, reconciliation_id: str) -> Reconciliation:
        async with self._engine.begin() as db:
            return await reconcile.load(db, reconciliation_id)

    async def reconciliation_rows(
        self,
        reconciliation_id: str,
        *,
        status: RowStatus | None = None,
        after: RowCursor | None = None,
        limit: int = reconciliation_pages.DEFAULT_PAGE_SIZE,
    ) -> tuple[ReconciliationRun, RowsPage]:
        """The run `reconciliation_id` (its counts, without its rows) and a page of its rows,
        those that differ first (`remit.ledger.reconciliation_pages`)."""
        async with self._engine.begin() as db:
            run = await reconciliation_runs.stored_run(db, reconciliation_id)
            page = await reconciliation_pages.rows_page(
                db, reconciliation_id, status=status, after=after, limit=limit
            )
            return run, page

    async def list_reconciliations(
        self, limit: int = reconciliation_runs.DEFAULT_LIST_LIMIT
    ) -> tuple[list[ReconciliationRun], bool]:
        """The stored runs that finished last, the latest first, and whether there are more."""
        async with self._engine.begin() as db:
            return await reconciliation_runs.recent_runs(db, limit)


async def _without_statement_timeout(db: AsyncConnection) -> None:
    """Lift the services' statement timeout (`config.statement_timeout_s`) for the rest of the
    transaction: a verification or reconciliation reads a whole ledger, or a whole day of it,
    which may rightly take longer than any request's statement."""
    await db.execute(text("SET LOCAL statement_timeout = 0"))
