"""Use cases of disputes: the worker opens one after a capture the network said would be
disputed; the merchant reads them, gives evidence, submits it, or accepts the loss; the worker
decides a submitted one as Stripe's test mode does.

Opening a dispute is one transaction of the worker's job (`OPEN_DISPUTE_JOB`, staged with the
capture's outcome by `remit.payments.expected_disputes`, and again by the settlement of a
refund it waited for, or by the failure of a succeeded refund before a dispute opened): under
the charge's lock it makes the dispute, names it on the charge, tells of it
(charge.dispute.created, then charge.dispute.funds_withdrawn) and takes its amount and fee from
the merchant's balance, the ledger last. The job runs again after a crash, or twice at once:
the charge's lock and its `dispute_id` make the second run find the dispute and do nothing.

A refund of the charge made before the dispute opened may fail after it did: the money the
failure gives back to the merchant goes to the dispute (`take_failed_refund`, in the
transaction of the refund's failure, the charge locked), unless the dispute was won.

Deciding a dispute is the same in form. A submission whose evidence asks Stripe's test mode for
a decision (`disputes.decision_in_test_mode`) stages the job `DECIDE_DISPUTE_JOB` in the
submission's transaction, one per dispute; the job, under the dispute's lock, closes it won or lost
(charge.dispute.closed). A won dispute's amount is reinstated (charge.dispute.funds_reinstated,
and the ledger's posting last, with the balance.available event it makes). A second run finds
the dispute decided and does nothing.
"""

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import invalid, not_found
from remit.core.ids import new_id
from remit.core.jsonview import JsonObject, to_json
from remit.core.metadata import updated_metadata
from remit.ledger import postings as ledger
from remit.ledger.balance_repository import balance_transaction_from_row
from remit.ledger.objects import BalanceTransaction
from remit.ledger.tables import balance_transactions
from remit.payments.charges import UNSETTLED_REFUNDS, Charge, ChargeStatus, Refund
from remit.payments.dispute_messages import dispute_message
from remit.payments.disputes import (
    Dispute,
    DisputeStatus,
    accepted,
    decision_in_test_mode,
    dispute_fee_minor,
    lost,
    opened,
    refund_failed,
    takes_failed_refunds,
    updated,
    won,
)
from remit.payments.keyed import Done, Keyed, Replay, run_keyed
from remit.payments.repository import ChargeRepository, DisputeRepository, RefundRepository
from remit.payments.requests import current_request
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, cursor_for
from remit.versioning.previous_attributes import changed_attributes
from remit.webhooks.outbox import record_event
from remit.worker.jobs import stage_job

log = logging.getLogger(__name__)

OPEN_DISPUTE_JOB: Final = "payments.open_dispute"
DECIDE_DISPUTE_JOB: Final = "payments.decide_dispute"
MAX_LIST_LIMIT: Final = 100


class DisputesService:
    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()

    def _now(self) -> datetime:
        return self._clock.now()

    # --- Opening (the worker) -------------------------------------------------------------

    async def open_expected(self, db: AsyncConnection, account_id: str, charge_id: str) -> None:
        """The job's work, in its transaction: open the dispute the network said the charge's
        cardholder would raise, unless the charge has one already (an earlier run's)."""
        charges = ChargeRepository(db)
        charge = await charges.get(account_id, charge_id, for_update=True)
        if charge is None:
            log.error("the charge %s to dispute does not exist", charge_id)
            return
        if charge.disputed:
            return
        if not charge.captured or charge.status is not ChargeStatus.SUCCEEDED:
            # Staged only by a capture, and a capture is never undone: not a state to reach.
            log.error("the charge %s to dispute was not captured", charge_id)
            return
        # The cardholder disputes what they still paid: the worker opens the dispute some time
        # after the capture, and the merchant may have refunded the charge meanwhile. A refund
        # the acquirer has not settled may still fail and give its amount back to the charge,
        # which a dispute sized without it would then leave out: the dispute waits for it. Its
        # settlement, under the charge's lock as this read is, stages this job again
        # (`expected_disputes.ExpectedDisputes.refund_changed`), so none waits on a retry's
        # backoff or uses up the job's attempts however long the refund takes.
        unsettled = [
            refund.id
            for refund in await RefundRepository(db).of_charge(account_id, charge_id)
            if refund.status in UNSETTLED_REFUNDS
        ]
        if unsettled:
            log.info(
                "the dispute of charge %s waits for its unsettled refunds %s",
                charge_id,
                ", ".join(sorted(unsettled)),
            )
            return
        disputed_minor = charge.refundable_minor
        if disputed_minor <= 0:
            # Unless a refund the acquirer made fails afterwards: its failure stages this job
            # again (`expected_disputes.ExpectedDisputes.refund_changed`).
            log.info("the charge %s was refunded in full: no dispute is opened", charge_id)
            return
        now = self._now()
        dispute_id = new_id("dp")
        withdrawal = ledger.dispute_withdrawal(
            new_id("txn"),
            account_id=account_id,
            dispute_id=dispute_id,
            charge_id=charge.id,
            amount_minor=disputed_minor,
            fee_minor=dispute_fee_minor(charge.currency),
            currency=charge.currency,
            now=now,
        )
        dispute = opened(
            dispute_id=dispute_id,
            account_id=account_id,
            charge_id=charge.id,
            payment_intent_id=charge.payment_intent_id,
            amount_minor=disputed_minor,
            currency=charge.currency,
            card_brand=charge.card.brand,
            withdrawal_id=withdrawal.id,
            now=now,
        )
        await DisputeRepository(db).insert(dispute)
        await charges.save(replace(charge, dispute_id=dispute.id, updated_at=now))
        shown = _json(dispute, [withdrawal])
        # Stripe tells of the dispute, then of the money it took, each with the dispute.
        await _emit(db, dispute, "charge.dispute.created", shown, now)
        await _emit(db, dispute, "charge.dispute.funds_withdrawn", shown, now)
        # Last: the posting holds the account's chain lock until the commit.
        await ledger.record_dispute_funds_withdrawn(db, withdrawal, now=now)

    # --- Deciding (the worker) ------------------------------------------------------------

    async def decide_submitted(self, db: AsyncConnection, account_id: str, dispute_id: str) -> None:
        """The job's work, in its transaction: decide the dispute under review as its submitted
        evidence asked, unless it was decided already (an earlier run)."""
        repo = DisputeRepository(db)
        dispute = await repo.get(account_id, dispute_id, for_update=True)
        if dispute is None:
            log.error("the dispute %s to decide does not exist", dispute_id)
            return
        decision = decision_in_test_mode(dispute)
        if decision is None:
            # Decided by an earlier run (or never to be: only a submission that asks for a
            # decision stages the job, and evidence under review cannot change).
            return
        now = self._now()
        withdrawn = (await _moved_by(db, [dispute]))[dispute.id]
        if decision is DisputeStatus.LOST:
            # The cardholder keeps the money: nothing moves.
            after = lost(dispute, now)
            await repo.save(after)
            await _emit_change(db, dispute, after, withdrawn, "charge.dispute.closed", now)
            return
        reinstatement = ledger.dispute_reinstatement(
            new_id("txn"),
            account_id=account_id,
            dispute_id=dispute.id,
            charge_id=dispute.charge_id,
            amount_minor=dispute.amount_minor,
            currency=dispute.currency,
            now=now,
        )
        after = won(dispute, reinstatement_id=reinstatement.id, now=now)
        await repo.save(after)
        shown = _json(after, [*withdrawn, reinstatement])
        # Stripe tells of the decision, then of the money it gave back, each with the dispute.
        closed_from = changed_attributes(_json(dispute, withdrawn), shown)
        await _emit(db, after, "charge.dispute.closed", shown, now, closed_from)
        await _emit(db, after, "charge.dispute.funds_reinstated", shown, now)
        # Last: the posting holds the account's chain lock until the commit.
        await ledger.record_dispute_funds_reinstated(db, reinstatement, now=now)

    # --- The merchant's calls -------------------------------------------------------------

    async def get(
        self, account_id: str, dispute_id: str
    ) -> tuple[Dispute, list[BalanceTransaction]]:
        async with self._engine.begin() as db:
            dispute = await DisputeRepository(db).get(account_id, dispute_id)
            if dispute is None:
                raise not_found("dispute", dispute_id)
            moved = await _moved_by(db, [dispute])
        return dispute, moved[dispute.id]

    async def list_disputes(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        charge_id: str | None = None,
        payment_intent_id: str | None = None,
    ) -> tuple[list[tuple[Dispute, list[BalanceTransaction]]], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            repo = DisputeRepository(db)
            after = await _cursor(db, repo, account_id, starting_after, "starting_after")
            before = await _cursor(db, repo, account_id, ending_before, "ending_before")
            found, more = await repo.page(
                account_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                charge_id=charge_id,
                payment_intent_id=payment_intent_id,
            )
            moved = await _moved_by(db, found)
        return [(dispute, moved[dispute.id]) for dispute in found], more

    async def update(
        self,
        account_id: str,
        dispute_id: str,
        *,
        evidence: dict[str, str],
        metadata: dict[str, str],
        clear_metadata: bool,
        unset_metadata: list[str],
        submit: bool | None,
        keyed: Keyed[tuple[Dispute, list[BalanceTransaction]]] | None = None,
    ) -> Done[tuple[Dispute, list[BalanceTransaction]]] | Replay:
        """Metadata, evidence and its submission, in one transaction under the call's key;
        charge.dispute.updated tells of what changed. `submit` None: Stripe's default, which
        submits an update that gives evidence (`disputes.submits`). A submission whose evidence
        asks for a decision stages the job that makes it (`decide_submitted`)."""

        async def change(db: AsyncConnection) -> tuple[Dispute, list[BalanceTransaction]]:
            repo = DisputeRepository(db)
            dispute = await repo.get(account_id, dispute_id, for_update=True)
            if dispute is None:
                raise not_found("dispute", dispute_id)
            now = self._now()
            merged = updated_metadata(
                dispute.metadata, clear=clear_metadata, unset=unset_metadata, values=metadata
            )
            after = updated(dispute, evidence=evidence, metadata=merged, submit=submit, now=now)
            moved = (await _moved_by(db, [dispute]))[dispute.id]
            if _changed(dispute, after):
                await repo.save(after)
                await _emit_change(db, dispute, after, moved, "charge.dispute.updated", now)
            submitted = after.submission_count > dispute.submission_count
            if submitted and decision_in_test_mode(after) is not None:
                await _stage_decision(db, after, now)
            return (after if _changed(dispute, after) else dispute), moved

        return await run_keyed(self._engine, keyed, self._now(), change)

    async def close(
        self,
        account_id: str,
        dispute_id: str,
        keyed: Keyed[tuple[Dispute, list[BalanceTransaction]]] | None = None,
    ) -> Done[tuple[Dispute, list[BalanceTransaction]]] | Replay:
        """Accept the dispute: it is lost (charge.dispute.closed); its money stays withdrawn."""

        async def close(db: AsyncConnection) -> tuple[Dispute, list[BalanceTransaction]]:
            repo = DisputeRepository(db)
            dispute = await repo.get(account_id, dispute_id, for_update=True)
            if dispute is None:
                raise not_found("dispute", dispute_id)
            now = self._now()
            after = accepted(dispute, now)
            moved = (await _moved_by(db, [dispute]))[dispute.id]
            if after is not dispute:
                await repo.save(after)
                await _emit_change(db, dispute, after, moved, "charge.dispute.closed", now)
            return after, moved

        return await run_keyed(self._engine, keyed, self._now(), close)


async def take_failed_refund(
    db: AsyncConnection, charge: Charge, refund: Refund, now: datetime
) -> None:
    """A refund of the disputed `charge` (locked by the caller, as every refund settlement
    locks it) failed after it had succeeded, in the caller's transaction: its money comes back
    to the merchant's balance (the ledger's hook), and the dispute, of what the charge held
    when it opened, takes it too (`disputes.refund_failed`): the cardholder got that money
    neither as the refund nor through the dispute. charge.dispute.funds_withdrawn tells of
    it, and the withdrawal is posted last. A dispute won keeps the money with the merchant
    (`disputes.takes_failed_refunds`); so does a repeat, which finds the withdrawal made."""
    assert charge.dispute_id is not None
    repo = DisputeRepository(db)
    dispute = await repo.get(charge.account_id, charge.dispute_id, for_update=True)
    if dispute is None:
        log.error("the dispute %s of charge %s does not exist", charge.dispute_id, charge.id)
        return
    if not takes_failed_refunds(dispute):
        return
    moved = (await _moved_by(db, [dispute]))[dispute.id]
    ledger_id = ledger.dispute_withdrawal_id_for(dispute.id, refund.id)
    if any(txn.ledger_transaction_id == ledger_id for txn in moved):
        return
    withdrawal = ledger.dispute_withdrawal(
        new_id("txn"),
        account_id=dispute.account_id,
        dispute_id=dispute.id,
        charge_id=dispute.charge_id,
        amount_minor=refund.amount_minor,
        fee_minor=0,
        currency=dispute.currency,
        now=now,
        refund_id=refund.id,
    )
    after = refund_failed(
        dispute, amount_minor=refund.amount_minor, withdrawal_id=withdrawal.id, now=now
    )
    await repo.save(after)
    await _emit(
        db, after, "charge.dispute.funds_withdrawn", _json(after, [*moved, withdrawal]), now
    )
    # Last: the posting holds the account's chain lock until the commit.
    await ledger.record_dispute_funds_withdrawn(db, withdrawal, now=now)


async def _stage_decision(db: AsyncConnection, dispute: Dispute, now: datetime) -> None:
    """The issuer's decision of a submitted dispute, for the worker to make once the
    submission commits: asynchronous, as Stripe's test mode decides shortly after."""
    await stage_job(
        db,
        DECIDE_DISPUTE_JOB,
        {"account_id": dispute.account_id, "dispute_id": dispute.id},
        now=now,
        account_id=dispute.account_id,
        # Evidence is submitted once (a dispute under review takes no more): one decision.
        dedupe_key=f"{DECIDE_DISPUTE_JOB}:{dispute.id}",
    )


def _changed(before: Dispute, after: Dispute) -> bool:
    return replace(after, updated_at=before.updated_at) != before


def _json(dispute: Dispute, moved: Sequence[BalanceTransaction]) -> JsonObject:
    return to_json(dispute_message(dispute, moved))


async def _emit_change(
    db: AsyncConnection,
    before: Dispute,
    after: Dispute,
    moved: Sequence[BalanceTransaction],
    event_type: str,
    now: datetime,
) -> None:
    """Tell of a change of the dispute, with what it changed (`previous_attributes`)."""
    shown = _json(after, moved)
    previous = changed_attributes(_json(before, moved), shown)
    await _emit(db, after, event_type, shown, now, previous)


async def _emit(
    db: AsyncConnection,
    dispute: Dispute,
    event_type: str,
    shown: JsonObject,
    now: datetime,
    previous_attributes: JsonObject | None = None,
) -> None:
    request = current_request.get()
    await record_event(
        db,
        account_id=dispute.account_id,
        type=event_type,
        data_object=shown,
        now=now,
        previous_attributes=previous_attributes,
        request_id=None if request is None else request.request_id,
        idempotency_key=None if request is None else request.idempotency_key,
    )


async def _cursor(
    db: AsyncConnection,
    repo: DisputeRepository,
    account_id: str,
    dispute_id: str | None,
    param: str,
) -> Cursor | None:
    if dispute_id is None:
        return None
    cursor = await cursor_for(db, repo.table, account_id, dispute_id)
    if cursor is None:
        raise not_found("dispute", dispute_id, param=param)
    return cursor


async def _moved_by(
    db: AsyncConnection, disputes: Sequence[Dispute]
) -> dict[str, list[BalanceTransaction]]:
    """Each dispute's balance transactions, in its order, read in one query."""
    wanted = {txn_id for dispute in disputes for txn_id in dispute.balance_transaction_ids}
    found: dict[str, BalanceTransaction] = {}
    if wanted:
        c = balance_transactions.c
        rows = await db.execute(
            select(balance_transactions).where(
                c.account_id == disputes[0].account_id, c.id.in_(sorted(wanted))
            )
        )
        found = {row.id: balance_transaction_from_row(row) for row in rows}
    return {
        dispute.id: [found[txn_id] for txn_id in dispute.balance_transaction_ids if txn_id in found]
        for dispute in disputes
    }
