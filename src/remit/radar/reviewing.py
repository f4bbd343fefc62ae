"""Review use cases: read, approve, close. Closing moves money through the payments service.

A close refunds or cancels the payment at the acquirer before it closes the review, so it
cannot be one transaction. It first records the reason it will close with on the locked review
(`closing_reason`), then refuses the payment, then closes. An approval is refused while that
reason is recorded: otherwise one committed between the refund and the close won, and the review
said approved of a payment refunded for fraud. The reason is taken back only when the payment
was certainly not refused (the refund or cancel was refused, or never began, or the refund
failed); a refusal still under way keeps it until its retry or the completer closes the review.
One left behind by a close that died after its refund failed is seen by the next approval,
which goes through.

The payment is refused once, under the review's own key, whichever reason the close gives: a
close with another reason than the one a close already refunded with is refused, told what
became of that refund, and never refunds a second time.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Final

from google.rpc import status_pb2
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.grpcutil.errors import detail_of_status
from remit.payments import idempotency
from remit.payments.charges import Charge, Refund, RefundReason, RefundStatus
from remit.payments.crashpoints import crash_after
from remit.payments.domain import CancellationReason
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.keyed import (
    Done,
    Keyed,
    KeyedCall,
    Replay,
    Work,
    is_stored_refusal,
    replay_of,
    run_keyed,
    stored_error,
    value_of,
)
from remit.payments.repository import ChargeRepository, RefundRepository
from remit.payments.service import PaymentsService, StepLeftAlone
from remit.radar.gate import emit_review_event
from remit.radar.refusals import legacy_refusal_key, refusal_call, refusal_of
from remit.radar.reviews import ClosedReason, Review, ReviewRepository
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, cursor_for

MAX_LIST_LIMIT: Final = 100
# A crash switch point (tests only): the refund or cancel is done, the review not yet closed.
PAYMENT_REFUSED: Final = "review_payment_refused"


def _closed_already(review: Review) -> RemitError:
    return RemitError(
        message=f"This review is already closed ({review.reason}).",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="review_closed",
    )


def _being_closed(review: Review) -> RemitError:
    assert review.closing_reason is not None
    return RemitError(
        message=f"This review is being closed ({review.closing_reason.value}): its payment is "
        "being refunded or canceled.",
        kind=ErrorKind.FAILED_PRECONDITION,
        code="review_closing",
    )


def _refuse_a_wrong_action(charge: Charge, reason: ClosedReason) -> None:
    if reason is ClosedReason.CANCELED and charge.captured:
        raise invalid("The payment was captured; close the review with a refund instead.", "action")
    if reason is not ClosedReason.CANCELED and not charge.captured:
        raise invalid(
            "The payment is not captured; close the review by canceling it instead.", "action"
        )


class ReviewsService:
    def __init__(
        self, engine: AsyncEngine, payments: PaymentsService, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._payments = payments
        self._clock = clock or SystemClock()

    def _now(self) -> datetime:
        return self._clock.now()

    async def get(self, account_id: str, review_id: str) -> Review:
        async with self._engine.begin() as db:
            review = await ReviewRepository(db).get(account_id, review_id)
        if review is None:
            raise not_found("review", review_id)
        return review

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        open_only: bool | None = None,
    ) -> tuple[list[Review], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            cursors: list[Cursor | None] = []
            for object_id, param in (
                (starting_after, "starting_after"),
                (ending_before, "ending_before"),
            ):
                cursor = None
                if object_id is not None:
                    cursor = await cursor_for(db, ReviewRepository.table, account_id, object_id)
                    if cursor is None:
                        raise not_found("review", object_id, param=param)
                cursors.append(cursor)
            return await ReviewRepository(db).page(
                account_id,
                limit=limit,
                starting_after=cursors[0],
                ending_before=cursors[1],
                created=created,
                open_only=open_only,
            )

    async def approve(self, account_id: str, review_id: str) -> Review:
        return value_of(await self.approve_once(account_id, None, review_id))

    async def approve_once(
        self, account_id: str, keyed: Keyed[Review] | None, review_id: str
    ) -> Done[Review] | Replay:
        """Close the review as approved: one transaction that moves no money, so a client key
        commits with it and a retry replays."""
        return await self._close(account_id, keyed, review_id, ClosedReason.APPROVED)

    async def close(self, account_id: str, review_id: str, reason: ClosedReason) -> Review:
        """Refuse the payment: refund its charge, or cancel its uncaptured intent, then close.
        Without a client key a second close is refused as already closed."""
        if reason is ClosedReason.APPROVED:
            return await self.approve(account_id, review_id)
        review = await self._begin_closing(account_id, review_id, reason, resumed=False)
        await self._refuse_payment(review, reason)
        return value_of(await self._close(account_id, None, review_id, reason))

    async def close_once(
        self, account_id: str, keyed: Keyed[Review] | None, review_id: str, reason: ClosedReason
    ) -> Done[Review] | Replay:
        """A close under the client's key. The refund reaches the acquirer, so this is not one
        transaction: the key is claimed first, the refund or cancel runs under the review's
        own key (`review_<id>`, so it never happens twice), and the key finishes in the
        transaction that closes the review, or at once when the close is refused
        (`_end_refused`). A retry of a close that went through replays its
        answer; one that died half-way, or the completer, finishes it (`finish_close`)."""
        if reason is ClosedReason.APPROVED:
            return await self.approve_once(account_id, keyed, review_id)
        if keyed is None:
            return Done(await self.close(account_id, review_id, reason))
        now = self._now()
        async with self._engine.begin() as db:
            record = await idempotency.begin(db, **keyed.call.claim_fields(now))
            fresh = record.recovery_point is RecoveryPoint.STARTED
            if fresh:
                # Past `started` at once: the completer drops a key left at `started` as a
                # request that did nothing, but this one may already have refunded, so the
                # completer must finish it instead (the refund under the review's key never
                # happens twice).
                record = await idempotency.advance(
                    db, record, RecoveryPoint.ATTEMPT_CREATED, now=now
                )
        if record.finished:
            return replay_of(record)
        return Done(
            await self.finish_close(record, review_id, reason, keyed.respond, resumed=not fresh)
        )

    async def finish_close(
        self,
        record: KeyRecord,
        review_id: str,
        reason: ClosedReason,
        respond: Callable[[Review], bytes],
        *,
        resumed: bool = True,
    ) -> Review:
        """Refund or cancel, then close and finish the key, from wherever the close stopped.
        Only a resumed close (a retry, the completer) finds the review closed by itself; a
        fresh one is refused as already closed."""
        try:
            review = await self._begin_closing(
                record.account_id, review_id, reason, resumed=resumed
            )
            if review.open:
                await self._refuse_payment(review, reason)
                crash_after(PAYMENT_REFUSED)
            # Else closed with this reason already: only the answer was lost on the way.
            return await self._close_finishing(record, review_id, reason, respond)
        except RemitError as error:
            await self._end_refused(record, error)
            raise
        except BaseException:
            async with self._engine.begin() as db:
                await idempotency.release(db, record)
            raise

    async def _end_refused(self, record: KeyRecord, error: RemitError) -> None:
        """The key of a close that `error` ended, as the rest of the payments core leaves one,
        at once rather than held until the completer comes by: a refusal by the state of things
        (the review closed already, its refund failed) is stored for retries to replay; a
        request that failed validation (an action that does not fit the payment, no such
        review) moved nothing and is dropped, for the client to fix it and send it again under
        the same key. Any other failure (the acquirer unreachable, the refund's outcome
        unknown) is released where it stopped, for a retry or the completer to carry on."""
        now = self._now()
        try:
            async with self._engine.begin() as db:
                if is_stored_refusal(error):
                    stored = stored_error(error)
                    await idempotency.finish(
                        db, record, response_code=stored.code, response_body=stored.body, now=now
                    )
                elif error.kind in (ErrorKind.INVALID_ARGUMENT, ErrorKind.NOT_FOUND):
                    await idempotency.forget_held(db, record)
                else:
                    await idempotency.release(db, record)
        except RemitError as lost:
            if lost.kind is not ErrorKind.CONFLICT:
                raise
            # Taken over meanwhile (its lease ran out): the key is its new holder's to end;
            # this request still answers with its own refusal.

    async def _begin_closing(
        self, account_id: str, review_id: str, reason: ClosedReason, *, resumed: bool
    ) -> Review:
        """Record on the locked review that it is being closed with `reason`, in a transaction
        of its own, committed before the payment is refused. Refuses a review closed already
        (unless a resumed close finds it closed with its own reason: returned as it is), one
        being closed with another reason, an action that does not fit the payment, and another
        action than the one a close already refunded or canceled with, or tried to."""
        async with self._engine.begin() as db:
            reviews = ReviewRepository(db)
            review = await reviews.get(account_id, review_id, for_update=True)
            if review is None:
                raise not_found("review", review_id)
            if not review.open:
                if resumed and review.closed_reason is reason:
                    return review
                raise _closed_already(review)
            if review.closing_reason is not reason:  # else a close with this reason carries on
                if review.closing_reason is not None and not await _abandon_a_close_never_begun(
                    db, review, self._now(), approving=False
                ):
                    raise _being_closed(review)
                charge = await ChargeRepository(db).get(account_id, review.charge_id)
                assert charge is not None
                _refuse_a_wrong_action(charge, reason)
                await _refuse_another_action_after_one_made(db, review, reason)
                review = replace(review, closing_reason=reason)
                await reviews.save(review)
            if reason is not ClosedReason.CANCELED:
                await _drop_a_refusal_that_moved_nothing(db, review)
            return review

    async def _refuse_payment(self, review: Review, reason: ClosedReason) -> None:
        """The refund or cancel a close asks for, under the review's own key. When it fails
        having certainly moved nothing, the review can be approved again."""
        try:
            await self._refuse_payment_under_its_key(review, reason)
        except StepLeftAlone as left:
            self._close_after(left, review.account_id, review.id, reason)
            raise
        except BaseException:
            # A cancelled close too (CancelledError): left behind, its mark would refuse every
            # approval for as long as nobody closed the review with the same reason.
            await self._stop_closing_unless_under_way(review.account_id, review.id, reason)
            raise

    async def _refuse_payment_under_its_key(self, review: Review, reason: ClosedReason) -> None:
        account_id = review.account_id
        async with self._engine.begin() as db:
            call = await _refusal_call_in_use(db, account_id, review.id, reason)
        if reason is ClosedReason.CANCELED:
            result: object = await self._payments.cancel_payment_intent(
                call, review.payment_intent_id, CancellationReason.FRAUDULENT, _no_body
            )
        else:
            result = await self._payments.create_refund(
                call,
                charge_id=review.charge_id,
                payment_intent_id=None,
                amount_minor=None,
                reason=RefundReason.FRAUDULENT
                if reason is ClosedReason.REFUNDED_AS_FRAUD
                else RefundReason.REQUESTED_BY_CUSTOMER,
                metadata={},
                respond=_no_body,
                # Refused for the charge's state (its other refunds reserve it, one pending),
                # the refund is tried again by the next close, not replayed to it: the pending
                # refund may have failed since. And a close that dies after the refusal leaves
                # no finished key that would keep its mark from ever being taken back.
                stores_state_refusals=False,
            )
        _refuse_if_failed(result)
        if reason is not ClosedReason.CANCELED:
            await self._refuse_unless_refunded(account_id, call.key, result)

    async def _stop_closing_unless_under_way(
        self, account_id: str, review_id: str, reason: ClosedReason
    ) -> None:
        """A close's refund or cancel failed: take back its `closing_reason` if the refusal
        certainly moved nothing (its key was never kept, or holds a refusal). One that may be
        under way at the acquirer (its outcome unknown, its key kept unfinished) keeps it, so
        that no approval can win before its retry or the completer closes the review."""
        async with self._engine.begin() as db:
            reviews = ReviewRepository(db)
            current = await reviews.get(account_id, review_id, for_update=True)
            if current is None or not current.open or current.closing_reason is not reason:
                return
            call = await _refusal_call_in_use(db, account_id, review_id, reason)
            stored = await idempotency.find(db, account_id, call.key)
            if stored is not None and not await _ended_leaving_the_payment(db, stored):
                return
            await reviews.save(replace(current, closing_reason=None))

    async def resume_refusal(self, record: KeyRecord) -> bool:
        """Finish a close's own refund or cancel (`refusal_call`) left unfinished, then
        close the review: its close failed or died on the way and nobody retried it. Whether
        `record` was such a key; any other key is left alone."""
        refusal = refusal_of(record)
        if refusal is None:
            return False
        review_id, reason = refusal
        result: object
        try:
            if reason is ClosedReason.CANCELED:
                result = await self._payments.resume_cancel(
                    record, CancellationReason.FRAUDULENT, _no_body
                )
            else:
                result = await self._payments.resume_refund(record, _no_body)
            _refuse_if_failed(result)
            if reason is not ClosedReason.CANCELED:
                await self._refuse_unless_refunded(record.account_id, record.key, result)
        except StepLeftAlone as left:
            self._close_after(left, record.account_id, review_id, reason)
            raise
        except BaseException:
            await self._stop_closing_unless_under_way(record.account_id, review_id, reason)
            raise
        await self._close(record.account_id, None, review_id, reason)
        return True

    def _close_after(
        self, left: StepLeftAlone, account_id: str, review_id: str, reason: ClosedReason
    ) -> None:
        """The close's refund or cancel runs on alone, its caller cancelled, and records its
        outcome: its review is closed after it, as the close would have, or nothing would
        close it (the completer finishes only refunds and cancels left unfinished)."""
        self._payments.follow_step_left_alone(
            left, lambda: self._close_once_refused(account_id, review_id, reason)
        )

    async def _close_once_refused(
        self, account_id: str, review_id: str, reason: ClosedReason
    ) -> None:
        """Close a review being closed with `reason` whose refund or cancel has finished, with
        its outcome replayed as a retry of the close would. One unfinished is left to its
        retry or the completer (`resume_refusal`)."""
        async with self._engine.begin() as db:
            call = await _refusal_call_in_use(db, account_id, review_id, reason)
            stored = await idempotency.find(db, account_id, call.key)
            review = await ReviewRepository(db).get(account_id, review_id)
        if stored is None or not stored.finished:
            return
        if review is None or not review.open or review.closing_reason is not reason:
            return
        await self._refuse_payment(review, reason)
        await self._close(account_id, None, review_id, reason)

    async def _refuse_unless_refunded(self, account_id: str, key: str, result: object) -> None:
        """A close's refund the acquirer refused (answered as a refund, failed) fails the close
        too: the payment stands, so the review must not say it was refunded. A replayed answer
        holds no refund, so the one made under the key is read."""
        refund = result.value if isinstance(result, Done) else None
        if not isinstance(refund, Refund):
            async with self._engine.begin() as db:
                stored = await idempotency.find(db, account_id, key)
                refund = None if stored is None else await _refund_of(db, stored)
        if refund is not None and _failed(refund):
            raise RemitError(
                message=f"The review's refund ({refund.id}) failed "
                f"({refund.failure_reason or refund.status.value}): the payment was not "
                "refunded and the review stays open.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="refund_failed",
            )

    async def _close(
        self, account_id: str, keyed: Keyed[Review] | None, review_id: str, reason: ClosedReason
    ) -> Done[Review] | Replay:
        now = self._now()
        return await run_keyed(
            self._engine, keyed, now, self._closing(account_id, review_id, reason, now)
        )

    async def _close_finishing(
        self,
        record: KeyRecord,
        review_id: str,
        reason: ClosedReason,
        respond: Callable[[Review], bytes],
    ) -> Review:
        now = self._now()
        closing = self._closing(record.account_id, review_id, reason, now)
        async with self._engine.begin() as db:
            closed = await closing(db)
            await idempotency.finish(
                db, record, response_code=0, response_body=respond(closed), now=now
            )
        return closed

    def _closing(
        self, account_id: str, review_id: str, reason: ClosedReason, now: datetime
    ) -> Work[Review]:
        async def change(db: AsyncConnection) -> Review:
            repo = ReviewRepository(db)
            review = await repo.get(account_id, review_id, for_update=True)
            if review is None:
                raise not_found("review", review_id)
            if not review.open:
                if review.closed_reason is reason:
                    return review  # a retried close that had finished
                raise _closed_already(review)
            if (
                reason is ClosedReason.APPROVED
                and review.closing_reason is not None
                and not await _abandon_a_close_never_begun(db, review, now, approving=True)
            ):
                # Its payment is being refunded or canceled: approving now would record as
                # approved a payment the close is refusing.
                raise _being_closed(review)
            closed = review.closed(reason, now)
            await repo.save(closed)
            await emit_review_event(db, closed, "review.closed", now)
            return closed

        return change


def _no_body(_value: object) -> bytes:
    return b""


async def _refusal_call_in_use(
    db: AsyncConnection, account_id: str, review_id: str, reason: ClosedReason
) -> KeyedCall:
    """The review's refund or cancel call, under the key it was first made with: a close begun
    when these keys had no namespace of their own carries on under its old key, so its refund
    or cancel is resumed or replayed rather than sent a second time."""
    call = refusal_call(account_id, review_id, reason)
    legacy = await idempotency.find(db, account_id, legacy_refusal_key(review_id))
    if legacy is not None and refusal_of(legacy) == (review_id, reason):
        return replace(call, key=legacy.key)
    return call


async def _abandon_a_close_never_begun(
    db: AsyncConnection, review: Review, now: datetime, *, approving: bool
) -> bool:
    """Whether the close that marked the (locked) review as being closed never began refusing
    the payment, or ended leaving it as it was, and is given up. The mark stays behind when
    that close died or was cancelled before its refund or cancel got past `started` (the
    completer then drops such a key), or after its refund or cancel ended having moved nothing
    but before it took the mark back (the completer never looks at a finished key). Its key
    absent, at `started` with its lease over, or holding a refusal that recorded nothing
    (`_moved_nothing`), it is taken over here: an approval finishes it with a refusal, so that
    a close still on its way cannot refund or cancel after it; a close with another action
    drops it, as the key is the review's for any action. A key holding a refund the acquirer
    failed, or a refusal of a cancel it recorded (`_ended_leaving_the_payment`), is left as it
    is: every close replays it. A key held or past `started` otherwise is a close under way:
    not given up."""
    assert review.closing_reason is not None
    call = await _refusal_call_in_use(db, review.account_id, review.id, review.closing_reason)
    found = await idempotency.find(db, review.account_id, call.key)
    if found is not None and _moved_nothing(found):
        # Refused before it refunded or canceled anything, and the close died before it took
        # its mark back: no close is under way. Dropped, so that the key is taken over below
        # as if that close had never begun.
        await idempotency.forget_refusal(db, found)
        found = None
    if found is not None and await _ended_leaving_the_payment(db, found):
        # Its refund failed at the acquirer (or its cancel was refused), and the close died
        # before it took its mark back. The key keeps that answer, which every close replays:
        # nothing is refunded or canceled under it again, so the review is free to approve.
        # (A close with another action is told what became of this one instead of refunding
        # a second time: `_refuse_another_action_after_one_made`.)
        return True
    if found is not None and found.recovery_point is not RecoveryPoint.STARTED:
        return False
    try:
        record = await idempotency.begin(db, **call.claim_fields(now))
    except RemitError:
        return False  # held by the close right now (or not its key): under way
    if record.recovery_point is not RecoveryPoint.STARTED:
        return False
    if approving:
        refused = stored_error(
            RemitError(
                message=f"Review {review.id} was approved before this close refused its payment.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="review_closed",
            )
        )
        await idempotency.finish(
            db, record, response_code=refused.code, response_body=refused.body, now=now
        )
    else:
        await idempotency.forget(db, record)
    return True


def _moved_nothing(record: KeyRecord) -> bool:
    """Whether a close's refund or cancel key holds a refusal made before anything was
    refunded or canceled: finished with an error, and no refund, charge or intent recorded
    under it (`idempotency.forget_refusal` drops exactly such a key)."""
    return (
        record.finished
        and record.response_code != 0
        and record.refund_id is None
        and record.charge_id is None
        and record.payment_intent_id is None
    )


async def _drop_a_refusal_that_moved_nothing(db: AsyncConnection, review: Review) -> None:
    """Before a close refunds, under the lock of its review (open, being closed with a refund),
    drop a refusal its key holds that moved nothing, so the refund is tried against the charge
    as it stands now instead of replayed as it was refused then. Refunds under a review's key
    no longer store the charge's state refusals (`stores_state_refusals`), but a version
    before did: such a refusal would otherwise fail every close of the review for a day, even
    once the pending refund that reserved the charge failed. Never an approval's refusal: it
    closes the review in the transaction that stores it."""
    assert review.open
    assert review.closing_reason is not None
    call = await _refusal_call_in_use(db, review.account_id, review.id, review.closing_reason)
    found = await idempotency.find(db, review.account_id, call.key)
    if found is not None and _moved_nothing(found):
        await idempotency.forget_refusal(db, found)


async def _ended_leaving_the_payment(db: AsyncConnection, record: KeyRecord) -> bool:
    """Whether a close's refund or cancel key certainly ended with the payment standing as it
    was: finished with a refusal, or with a refund the acquirer failed. A retry under it
    replays that end; it never refunds or cancels."""
    if not record.finished:
        return False
    if record.response_code != 0:
        return True
    refund = await _refund_of(db, record)
    return refund is not None and _failed(refund)


async def _refuse_another_action_after_one_made(
    db: AsyncConnection, review: Review, reason: ClosedReason
) -> None:
    """Refuse a close of the (locked, open) review with another action than the one an earlier
    close refunded or canceled with, or tried to: the payment is refused once, under the
    review's key, whatever the reason, so that it is never refunded twice. The close is told
    what became of the earlier one (its refund failed: the review can be approved, or closed
    with that reason to be told again), as a close with that reason would be, rather than an
    idempotency error about a key it never chose. A key that holds a refusal which recorded
    nothing (`_moved_nothing`) is the review's for any action: it is dropped before the
    refund."""
    keys = (refusal_call(review.account_id, review.id, reason).key, legacy_refusal_key(review.id))
    for key in keys:
        found = await idempotency.find(db, review.account_id, key)
        earlier = None if found is None else refusal_of(found)
        if found is None or earlier is None or _moved_nothing(found):
            continue
        earlier_id, earlier_reason = earlier
        if earlier_id != review.id or earlier_reason is reason:
            continue
        refund = await _refund_of(db, found)
        if refund is not None and _failed(refund):
            raise RemitError(
                message=f"This review's payment was refunded once, when the review was closed "
                f"as {earlier_reason.value}, and that refund ({refund.id}) failed "
                f"({refund.failure_reason or refund.status.value}): it is not refunded a second "
                "time. The review stays open and can be approved.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="refund_failed",
            )
        if found.finished and found.response_code != 0:
            status = status_pb2.Status.FromString(found.response_body or b"")
            detail = detail_of_status(status)
            raise RemitError(
                message=f"This review's payment was refused once, when the review was closed "
                f"as {earlier_reason.value}, and that failed ({status.message}): it is not "
                "refunded or canceled a second time. The review stays open and can be approved.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code=None if detail is None else detail.code or None,
            )
        raise RemitError(
            message=f"This review is being closed ({earlier_reason.value}): its payment is "
            f"refunded or canceled for that close, so it cannot be closed as {reason.value}.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="review_closing",
        )


def _failed(refund: Refund) -> bool:
    return refund.status in (RefundStatus.FAILED, RefundStatus.CANCELED)


async def _refund_of(db: AsyncConnection, record: KeyRecord) -> Refund | None:
    """The refund made under a close's refund key, if it got as far as making one."""
    if record.refund_id is None:
        return None
    return await RefundRepository(db).get(record.account_id, record.refund_id)


def _refuse_if_failed(result: object) -> None:
    """A refund or cancel stored as failed by an earlier try fails the close too, with the
    code it failed with (`charge_already_refunded`), for the client to tell why. Not its
    param: that names a field of the refund or cancel, none of the close's request."""
    if isinstance(result, Replay) and result.code != 0:
        status = status_pb2.Status.FromString(result.body)
        detail = detail_of_status(status)
        raise RemitError(
            message=f"The review's refund or cancellation failed earlier: {status.message}",
            kind=ErrorKind.FAILED_PRECONDITION,
            code=None if detail is None else detail.code or None,
        )
