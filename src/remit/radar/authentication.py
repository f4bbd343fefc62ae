"""The cardholder's answer to a 3-D Secure challenge, and what it does to the payment.

Completing runs under an idempotency key of the challenge's own (`completion_key`, where no
caller's key can land), with the payments service's recovery points: the answer is recorded
(challenge, charge, intent) in one transaction that also advances the key to `attempt_created`;
from there the authenticated authorization resumes exactly like any attempt (a crash before the
network answer is settled by looking its reference up). A second click, or a retry after a
crash, replays or resumes; it never authorizes twice.

Passing continues the payment: to the network at once, or to `requires_confirmation` when the
intent is confirmed manually (the next confirm continues the same authenticated attempt). On
to the network, the saved card is checked again first, under its row lock, as a confirmation
checks it: detached, or saved to another customer, while the cardholder answered, it is not
charged, and the intent returns to `requires_payment_method` with the card's refusal as its
`last_payment_error` (`payment_intent.payment_failed`), the attempt failed as never sent.
Failing, or answering after the challenge expired, returns the intent to
`requires_payment_method` with `payment_intent_authentication_failure`
(`payment_intent.payment_failed`). Its charge fails as never sent to the network
(`remit.payments.never_authenticated`): outcome `invalid` / `not_sent_to_network`, and no
`charge.failed` (`remit.payments.events`), since Stripe has no charge for a payment whose
authentication failed; the intent's `last_payment_error` names none either. Unlike an attempt
the intent merely leaves behind, Radar counts it as a decline of the card (`attempt_settled`):
a cardholder failing authentication, again and again, is what testing stolen cards looks like.

A challenge nobody answers is ended the same way once it has expired, by the worker
(`remit.radar.expired_challenges`, `ThreeDSecureService.expire`): otherwise an intent nobody
touches again would keep its `pending` charge for ever.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from enum import Enum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, not_found
from remit.payments import idempotency
from remit.payments.charges import Charge, ChargeStatus
from remit.payments.domain import (
    ActionCompleted,
    ActionFailed,
    PaymentIntent,
    Status,
    transition,
)
from remit.payments.idempotency import KeyRecord, RecoveryPoint
from remit.payments.never_authenticated import (
    AUTHENTICATED_NOT_CONFIRMED,
    NOT_AUTHENTICATED,
    never_sent_outcome,
)
from remit.payments.ports import (
    ChargeableCard,
    PaymentHooks,
    PaymentMethodSource,
    RadarGate,
    attempt_facts,
    save_card_in,
)
from remit.payments.repository import ChargeRepository, PaymentIntentRepository
from remit.payments.requests import internal_key
from remit.payments.risk import AUTHENTICATION_FAILURE_MESSAGE, Authentication
from remit.payments.service import (
    Done,
    PaymentsService,
    Replay,
    paying_with_its_card,
    replay_of,
)
from remit.radar.challenges import ChallengeRepository, ChallengeStatus, ThreeDSChallenge

ENDPOINT: Final = "CompleteThreeDSecureChallenge"
AUTHENTICATION_FAILURE: Final = NOT_AUTHENTICATED
# Why the payment was never sent to the network, by how its challenge ended: the end of the
# charge's `outcome.seller_message`.
_NEVER_AUTHENTICATED: Final = {
    ChallengeStatus.FAILED: "the cardholder failed 3-D Secure authentication.",
    ChallengeStatus.EXPIRED: "its 3-D Secure challenge expired before the cardholder answered it.",
}

Build = Callable[[ThreeDSChallenge, PaymentIntent], bytes]


class Expiry(Enum):
    """What `ThreeDSecureService.expire` did with a challenge."""

    # Ended as a late answer ends it: the payment went back to `requires_payment_method`.
    ENDED = "ended"
    # Its intent had moved on without it: recorded expired, nothing else changed.
    CLOSED = "closed"
    # Nothing: answered meanwhile (or being answered), or not expired yet.
    LEFT = "left"


class _NothingToEndError(Exception):
    """Roll `expire`'s transaction back: the challenge is not its to end."""


def completion_key(challenge_id: str) -> str:
    """The key a challenge's answer runs under: one of remit's own, which no caller's
    Idempotency-Key can reach. The challenge id is public (it is in the page's address): under
    a key a merchant could send, a request of the merchant's keyed so would block the
    cardholder's answer, or be answered with it."""
    return internal_key(legacy_completion_key(challenge_id))


def legacy_completion_key(challenge_id: str) -> str:
    """The key an answer was once stored under, in the callers' namespace. Such keys may still
    be stored: unfinished (an authorization to resume) or holding the answer to replay."""
    return f"3ds_{challenge_id}"


async def completion_key_in_use(db: AsyncConnection, account_id: str, challenge_id: str) -> str:
    """The key the challenge's answer runs under: its old one when an answer (or the end of
    an expired challenge) was stored under it, so that a press after an upgrade resumes or
    replays that answer instead of answering a second time; its own otherwise. A caller's key
    of that name holds another request (its endpoint, or its body, is not an answer's) and is
    left to that caller."""
    legacy = await idempotency.find(db, account_id, legacy_completion_key(challenge_id))
    if (
        legacy is not None
        and legacy.endpoint == ENDPOINT
        and legacy.request_body == challenge_id.encode()
    ):
        return legacy.key
    return completion_key(challenge_id)


def _challenge_gone(challenge_id: str) -> RemitError:
    return not_found("three_d_secure_challenge", challenge_id)


class ThreeDSecureService:
    def __init__(
        self,
        engine: AsyncEngine,
        payments: PaymentsService,
        methods: PaymentMethodSource,
        radar: RadarGate,
        hooks: PaymentHooks,
        clock: Clock | None = None,
    ) -> None:
        self._engine = engine
        self._payments = payments
        self._methods = methods
        self._radar = radar
        self._hooks = hooks
        self._clock = clock or SystemClock()

    def _now(self) -> datetime:
        return self._clock.now()

    async def get_challenge(self, account_id: str, challenge_id: str) -> ThreeDSChallenge:
        """The challenge as the cardholder may still answer it: a pending one is shown expired
        once its time is up or its payment no longer waits for it (canceled, or updated so
        that it needs a new confirmation)."""
        async with self._engine.begin() as db:
            challenge = await ChallengeRepository(db).get(account_id, challenge_id)
            if challenge is None:
                raise _challenge_gone(challenge_id)
            if challenge.status is not ChallengeStatus.PENDING:
                return challenge
            intent = await PaymentIntentRepository(db).get(account_id, challenge.payment_intent_id)
        if challenge.expired_at(self._now()) or intent is None or not _awaits(intent, challenge):
            return replace(challenge, status=ChallengeStatus.EXPIRED)
        return challenge

    async def expire(self, account_id: str, challenge_id: str, *, build: Build) -> Expiry:
        """End a challenge nobody answered, once it has expired, exactly as an answer after
        expiry ends it (`_end_unauthenticated`, `expired`), for the sweep of such challenges
        (`remit.radar.expired_challenges`).

        It runs under the challenge's completion key, as an answer does, in one transaction
        with the key's claim: a press of either button meanwhile waits for it and then replays
        its end (the page sends the cardholder back to the merchant, as after a late answer),
        and a press in flight (the key held) or already finished leaves it nothing to do. The
        challenge, its intent and its charge are locked in the order an answer locks them.

        A challenge whose intent moved on without it (canceled, say: its charge failed with
        that change) is recorded expired, as `get_challenge` already shows it, and nothing else
        changes: nothing would ever end it otherwise."""
        now = self._now()
        try:
            async with self._engine.begin() as db:
                record = await idempotency.begin(
                    db,
                    account_id=account_id,
                    key=await completion_key_in_use(db, account_id, challenge_id),
                    endpoint=ENDPOINT,
                    request_body=challenge_id.encode(),
                    request_id=None,
                    now=now,
                )
                if record.recovery_point is not RecoveryPoint.STARTED:
                    # Answered already; or a pass on its way to the network, left to the
                    # completer (rolled back: the key stays as it was).
                    raise _NothingToEndError
                challenges = ChallengeRepository(db)
                challenge = await challenges.get(account_id, challenge_id, for_update=True)
                if (
                    challenge is None
                    or challenge.status is not ChallengeStatus.PENDING
                    or not challenge.expired_at(now)
                ):
                    raise _NothingToEndError
                intent, charge = await _lock_payment_of(db, challenge)
                if intent is None or charge is None or not _awaits(intent, challenge):
                    await challenges.save(
                        replace(challenge, status=ChallengeStatus.EXPIRED, completed_at=now)
                    )
                    await idempotency.forget(db, record)
                    return Expiry.CLOSED
                answered, after = await self._end_unauthenticated(
                    db, challenge, intent, charge, ChallengeStatus.EXPIRED, now
                )
                await idempotency.finish(
                    db, record, response_code=0, response_body=build(answered, after), now=now
                )
                return Expiry.ENDED
        except _NothingToEndError:
            return Expiry.LEFT
        except RemitError as error:
            if error.code == "idempotency_key_in_use":
                return Expiry.LEFT  # the cardholder's answer is being recorded
            raise

    async def complete(
        self, account_id: str, challenge_id: str, *, passed: bool, build: Build
    ) -> Done[tuple[ThreeDSChallenge, PaymentIntent]] | Replay:
        async with self._engine.begin() as db:
            record = await idempotency.begin(
                db,
                account_id=account_id,
                key=await completion_key_in_use(db, account_id, challenge_id),
                endpoint=ENDPOINT,
                # The challenge alone: a second answer, whichever button, replays the first.
                request_body=challenge_id.encode(),
                request_id=None,
                now=self._now(),
            )
        if record.finished:
            return replay_of(record)
        just_answered = record.recovery_point is RecoveryPoint.STARTED
        if just_answered:
            try:
                record, answered = await self._answer(record, challenge_id, passed, build)
            except RemitError:
                async with self._engine.begin() as db:
                    await idempotency.forget(db, record)
                raise
            except BaseException:
                async with self._engine.begin() as db:
                    await idempotency.release(db, record)
                raise
            if answered is not None:
                return Done(answered)
        return await self.resume(record, build, sent_before=not just_answered)

    async def resume(
        self, record: KeyRecord, build: Build, *, sent_before: bool = True
    ) -> Done[tuple[ThreeDSChallenge, PaymentIntent]] | Replay:
        """From `attempt_created` on: the authenticated authorization. `sent_before`: it may
        have been sent already (a retry, the completer), so the network is asked first."""
        challenge = await self.get_challenge(record.account_id, record.request_body.decode())
        result = await self._payments.resume_attempt(
            record, lambda i: build(challenge, i), sent_before=sent_before
        )
        if isinstance(result, Replay):
            return result
        return Done((challenge, result.value))

    async def _answer(
        self, record: KeyRecord, challenge_id: str, passed: bool, build: Build
    ) -> tuple[KeyRecord, tuple[ThreeDSChallenge, PaymentIntent] | None]:
        """Record the answer. Returns the finished result when nothing is left to do."""
        now = self._now()
        async with self._engine.begin() as db:
            challenges = ChallengeRepository(db)
            challenge = await challenges.get(record.account_id, challenge_id, for_update=True)
            if challenge is None:
                raise _challenge_gone(challenge_id)
            if challenge.status is not ChallengeStatus.PENDING:
                raise RemitError(
                    message=f"This 3-D Secure challenge was already answered "
                    f"({challenge.status.value}).",
                    kind=ErrorKind.FAILED_PRECONDITION,
                    code="three_d_secure_challenge_completed",
                )
            intents, charges = PaymentIntentRepository(db), ChargeRepository(db)
            intent, charge = await _lock_payment_of(db, challenge)
            if intent is None or charge is None or not _awaits(intent, challenge):
                # The intent moved on (canceled, say): the challenge can no longer pass, and
                # `get_challenge` shows it expired. Nothing is written: the refusal rolls back.
                raise RemitError(
                    message="This 3-D Secure challenge no longer belongs to a payment awaiting "
                    "authentication.",
                    kind=ErrorKind.FAILED_PRECONDITION,
                    code="payment_intent_unexpected_state",
                )
            authentication = Authentication.from_json(charge.authentication)
            if passed and not challenge.expired_at(now):
                answered = replace(challenge, status=ChallengeStatus.SUCCEEDED, completed_at=now)
                authenticated = replace(authentication, result="authenticated")
                charge_after = replace(
                    charge,
                    authentication=authenticated.as_json(),
                    network_result=None,
                    updated_at=now,
                )
                # As the attempt chose it, whether or not it may pay again: that is checked
                # under its row lock before the attempt goes on to the network. (A manual
                # confirmation goes on with it later: that confirmation checks it.)
                card = await self._methods.attempt_card(record.account_id, charge.payment_method_id)
                after = transition(intent, ActionCompleted(at=now))
                refusal = None
                if after.status is Status.PROCESSING:
                    refusal = await _refusal_of_card(db, card, after)
                if refusal is not None:
                    after = await self._end_with_unusable_card(
                        db, answered, intent, (charge, charge_after), refusal, now
                    )
                    await idempotency.finish(
                        db, record, response_code=0, response_body=build(answered, after), now=now
                    )
                    return record, (answered, after)
                # Rules run again with the cardholder authenticated (3-D Secure rules no longer
                # apply; allow, block and review rules still do), without counting again.
                verdict = await self._radar.reassess(
                    db, attempt_facts(intent, charge_after, card, now)
                )
                charge_after = replace(charge_after, risk=verdict.as_json())
                await challenges.save(answered)
                await charges.save(charge_after)
                await intents.save(after)
                await self._hooks.intent_changed(db, intent, after)
                if after.status is Status.PROCESSING:
                    record = await idempotency.advance(
                        db,
                        record,
                        RecoveryPoint.ATTEMPT_CREATED,
                        now=now,
                        payment_intent_id=intent.id,
                        charge_id=charge.id,
                    )
                    return record, None
                await idempotency.finish(
                    db, record, response_code=0, response_body=build(answered, after), now=now
                )
                return record, (answered, after)
            # Only a pass can be late: after expiry the challenge can only fail.
            status = ChallengeStatus.EXPIRED if passed else ChallengeStatus.FAILED
            answered, after = await self._end_unauthenticated(
                db, challenge, intent, charge, status, now
            )
            await idempotency.finish(
                db, record, response_code=0, response_body=build(answered, after), now=now
            )
            return record, (answered, after)

    async def _end_with_unusable_card(
        self,
        db: AsyncConnection,
        answered: ThreeDSChallenge,
        intent: PaymentIntent,
        charge: tuple[Charge, Charge],
        refusal: RemitError,
        now: datetime,
    ) -> PaymentIntent:
        """End a passed challenge's payment whose card may no longer pay it (`refusal`, as a
        confirmation with that card would be refused now): never sent to the network, the
        intent back to `requires_payment_method` with the refusal as its
        `last_payment_error` (and `payment_intent.payment_failed`), as after a failed
        authentication, rather than waiting in `requires_action` with a challenge that was
        answered. The charge (as it was, and as authenticated) fails as an authenticated
        attempt never sent on: no `charge.failed`, as Stripe has no charge for it, and no
        decline of the card for Radar to count. The challenge stays passed: the cardholder
        did authenticate."""
        pending, authenticated = charge
        failed_charge = replace(
            authenticated,
            status=ChargeStatus.FAILED,
            failure_code=AUTHENTICATED_NOT_CONFIRMED,
            failure_message=(
                f"The payment was authenticated but never sent to the network: {refusal.message}"
            ),
            outcome=never_sent_outcome(
                authenticated,
                "its payment method could no longer pay it once the cardholder authenticated.",
            ),
        )
        error = {
            "type": refusal.error_type,
            "code": refusal.code,
            "message": refusal.message,
            "payment_method": pending.payment_method_id,
        }
        after = transition(intent, ActionFailed(at=now, error=error))
        await ChallengeRepository(db).save(answered)
        await ChargeRepository(db).save(failed_charge)
        await PaymentIntentRepository(db).save(after)
        await self._hooks.charge_changed(db, pending, failed_charge, after)
        await self._hooks.intent_changed(db, intent, after)
        return after

    async def _end_unauthenticated(
        self,
        db: AsyncConnection,
        challenge: ThreeDSChallenge,
        intent: PaymentIntent,
        charge: Charge,
        status: ChallengeStatus,
        now: datetime,
    ) -> tuple[ThreeDSChallenge, PaymentIntent]:
        """End the challenge `status` (failed, or expired) and its payment as never
        authenticated: the charge fails as never sent to the network, the intent returns to
        `requires_payment_method`, Radar counts a decline. The one way a challenge ends without
        a pass, whether the cardholder answered it or nobody did (`expire`). Called with the
        challenge, its intent and its charge locked, in that order."""
        answered = replace(challenge, status=status, completed_at=now)
        authentication = Authentication.from_json(charge.authentication)
        failed_charge = replace(
            charge,
            status=ChargeStatus.FAILED,
            failure_code=AUTHENTICATION_FAILURE,
            failure_message=AUTHENTICATION_FAILURE_MESSAGE,
            authentication=replace(authentication, result="failed").as_json(),
            outcome=never_sent_outcome(charge, _NEVER_AUTHENTICATED[status]),
            network_result=None,
            updated_at=now,
        )
        error = {
            "type": "invalid_request_error",
            "code": AUTHENTICATION_FAILURE,
            "message": AUTHENTICATION_FAILURE_MESSAGE,
            "payment_method": charge.payment_method_id,
        }
        after = transition(intent, ActionFailed(at=now, error=error))
        await ChallengeRepository(db).save(answered)
        await ChargeRepository(db).save(failed_charge)
        await PaymentIntentRepository(db).save(after)
        await self._radar.attempt_settled(db, failed_charge)
        await self._hooks.charge_changed(db, charge, failed_charge, after)
        await self._hooks.intent_changed(db, intent, after)
        return answered, after


async def _refusal_of_card(
    db: AsyncConnection, card: ChargeableCard, intent: PaymentIntent
) -> RemitError | None:
    """Why the saved card of a passed challenge's attempt may no longer pay `intent`, or None.

    Nothing is authorized until the pass sends the authenticated attempt, and the cardholder
    may take minutes over the challenge: the card may have been detached meanwhile (by a
    detach, or its customer's deletion), or saved to another customer. So it is checked again
    as a confirmation checks it (`save_card_in`), with the same refusals, under its row lock,
    which it keeps until the pass commits: a detach waits for the attempt, and the attempt,
    decided then, goes on whatever comes after (`attempt_vault_token`). In a savepoint, so that
    the pass can go on to record the refusal."""
    try:
        async with db.begin_nested():
            await save_card_in(db, card, paying_with_its_card(intent))
    except RemitError as refusal:
        return refusal
    return None


async def _lock_payment_of(
    db: AsyncConnection, challenge: ThreeDSChallenge
) -> tuple[PaymentIntent | None, Charge | None]:
    """The challenge's intent and charge, locked in that order (after the challenge), the order
    every path that may go on with the attempt takes them in."""
    intent = await PaymentIntentRepository(db).get(
        challenge.account_id, challenge.payment_intent_id, for_update=True
    )
    charge = await ChargeRepository(db).get(
        challenge.account_id, challenge.charge_id, for_update=True
    )
    return intent, charge


def _awaits(intent: PaymentIntent, challenge: ThreeDSChallenge) -> bool:
    """Whether the challenge's payment still waits for it: a new attempt of the intent has a
    challenge of its own."""
    return (
        intent.status is Status.REQUIRES_ACTION and intent.latest_charge_id == challenge.charge_id
    )
