"""The acquirer's use cases. Each mutating call is one transaction, recorded once per reference.

Captures, voids and refunds work in two steps, in one transaction. A call first looks its
reference up and, when found, replays the stored operation (or refuses a retry whose
parameters differ). Otherwise it does the work and inserts the operation with `ON CONFLICT
(reference) DO NOTHING`; a concurrent duplicate waits on the unique index, finds the reference
taken, rolls its own work back and replays the winner's.

An authorization, the one call of every payment, is a single autocommitted statement instead:
it inserts the operation with the same `ON CONFLICT (reference) DO NOTHING`, inserts the
authorization only from the operation row it actually inserted, and reads the operation that
already holds the reference, all at once. A duplicate that loses the race on the unique index
inserts nothing and replays the winner's operation. Either way fifty simultaneous copies of
one call record one operation and one authorization.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.cards import profile_for
from remit.acquirer.domain import (
    Authorization,
    AuthorizationRequest,
    AuthorizationResult,
    AuthorizationState,
    NetworkStatus,
    Operation,
    OperationKind,
    Transition,
    assess_card,
    capture,
    capture_fee_minor,
    refund,
    settlement_row,
    void,
)
from remit.acquirer.repository import SqlAcquirerRepository
from remit.acquirer.settlement_clock import CLOCK_ERROR_S, settlement_grace
from remit.acquirer.settlement_pages import ResumedReport, SettlementCursor, SettlementPage
from remit.core.clock import Clock, SystemClock
from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.ids import has_prefix, new_id, random_string
from remit.core.settlement_days import is_partial, settlement_day
from remit.storage.engine import single_statement

MAX_AMOUNT_MINOR: Final = 99_999_999
MAX_REFERENCE_LENGTH: Final = 255
MIN_CARD_DIGITS: Final = 12
MAX_CARD_DIGITS: Final = 19
MAX_NETWORK_TRANSACTION_ID_LENGTH: Final = 64


class AcquirerError(RemitError):
    """Root of the errors the acquirer raises."""


def reference_reused(reference: str) -> AcquirerError:
    # FAILED_PRECONDITION rather than INVALID_ARGUMENT: the request is well formed, but the
    # reference is already bound to another call; retrying it unchanged can never succeed.
    return AcquirerError(
        message=f"The reference '{reference}' was already used for a request with different "
        "parameters.",
        kind=ErrorKind.FAILED_PRECONDITION,
        error_type="idempotency_error",
        code="reference_reused",
        param="reference",
    )


@dataclass(frozen=True)
class ReportDay:
    """The settlement day a report covers, and whether it may still get operations."""

    day: date
    partial: bool


@dataclass(frozen=True)
class Recorded:
    operation: Operation
    replayed: bool


class _ReferenceTakenError(Exception):
    """Another transaction recorded this reference first; ours rolls back."""


def _validate_reference(reference: str) -> None:
    if not reference:
        raise invalid("A reference is required.", "reference", code="parameter_missing")
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise invalid(f"reference can be at most {MAX_REFERENCE_LENGTH} characters.", "reference")


def _validate_amount(amount_minor: int) -> None:
    if amount_minor < 1:
        raise invalid("amount must be a positive integer.", "amount", code="amount_too_small")
    if amount_minor > MAX_AMOUNT_MINOR:
        raise invalid(
            f"amount must be no more than {MAX_AMOUNT_MINOR}.", "amount", code="amount_too_large"
        )


def _validate_authorization_request(request: AuthorizationRequest) -> None:
    _validate_reference(request.reference)
    _validate_amount(request.amount_minor)
    number = request.card_number.reveal()
    # The message never echoes the number.
    if not number.isdigit() or not MIN_CARD_DIGITS <= len(number) <= MAX_CARD_DIGITS:
        raise invalid(
            f"card_number must be {MIN_CARD_DIGITS} to {MAX_CARD_DIGITS} digits.",
            "card_number",
            code="invalid_number",
        )
    if not 1 <= request.exp_month <= 12:
        raise invalid("exp_month must be between 1 and 12.", "exp_month",
                      code="invalid_expiry_month")  # fmt: skip
    if not 2000 <= request.exp_year <= 2099:
        raise invalid("exp_year must be a four-digit year.", "exp_year",
                      code="invalid_expiry_year")  # fmt: skip
    if request.cvc is not None:
        cvc = request.cvc.reveal()
        if not cvc.isdigit() or len(cvc) not in (3, 4):
            raise invalid("cvc must be 3 or 4 digits.", "cvc", code="invalid_cvc")
    if request.currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {request.currency}.", "currency",
                      code="invalid_currency")  # fmt: skip
    if not has_prefix(request.merchant_id, "acct"):
        raise invalid("merchant_id must be an account id (acct_...).", "merchant_id")
    _validate_stored_credential(request)


def _validate_stored_credential(request: AuthorizationRequest) -> None:
    # A setup is the cardholder's agreement, given while present; only a payment the merchant
    # initiates relies on an earlier setup.
    if request.setup_off_session and request.off_session:
        raise invalid(
            "setup_off_session is for a payment the cardholder makes; it cannot be off_session.",
            "setup_off_session",
        )
    initial = request.initial_network_transaction_id
    if initial is None:
        return
    if not request.off_session:
        raise invalid(
            "initial_network_transaction_id is only for an off_session payment.",
            "initial_network_transaction_id",
        )
    if not initial or len(initial) > MAX_NETWORK_TRANSACTION_ID_LENGTH:
        raise invalid(
            "initial_network_transaction_id must be 1 to "
            f"{MAX_NETWORK_TRANSACTION_ID_LENGTH} characters.",
            "initial_network_transaction_id",
        )


_DIGITS: Final = "0123456789"
_NETWORK_TRANSACTION_ID_DIGITS: Final = 15
_AUTHORIZATION_CODE_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
_AUTHORIZATION_CODE_LENGTH: Final = 6


def _network_transaction_id() -> str:
    return random_string(_DIGITS, _NETWORK_TRANSACTION_ID_DIGITS)


def _authorization_code() -> str:
    return random_string(_AUTHORIZATION_CODE_ALPHABET, _AUTHORIZATION_CODE_LENGTH)


class AcquirerService:
    def __init__(
        self, engine: AsyncEngine, clock: Clock | None = None, *, grace: timedelta | None = None
    ) -> None:
        """`clock`: the database's (`remit.acquirer.settlement_clock`), which stamps every
        operation and says which days are over; a test's own. `grace`: how long after its end
        a day may still get operations committed (`settlement_grace`, from the settings)."""
        self._engine = engine
        self._clock = clock or SystemClock()
        self._grace = settlement_grace() if grace is None else grace

    async def _find(self, reference: str) -> Operation | None:
        async with single_statement(self._engine) as db:
            return await SqlAcquirerRepository(db).find_operation(reference)

    @staticmethod
    def _replay(existing: Operation, request: dict[str, object]) -> Recorded:
        if existing.request != request:
            raise reference_reused(existing.reference)
        return Recorded(existing, replayed=True)

    async def _record_once(
        self,
        reference: str,
        request: dict[str, object],
        perform: Callable[[SqlAcquirerRepository], Awaitable[Operation]],
    ) -> Recorded:
        try:
            async with self._engine.begin() as db:
                repository = SqlAcquirerRepository(db)
                existing = await repository.find_operation(reference)
                if existing is not None:
                    return self._replay(existing, request)
                operation = await perform(repository)
                if not await repository.insert_operation_once(operation):
                    raise _ReferenceTakenError
            return Recorded(operation, replayed=False)
        except _ReferenceTakenError:
            pass
        winner = await self._find(reference)
        if winner is None:
            raise AssertionError(f"reference {reference!r} was taken but is not recorded")
        return self._replay(winner, request)

    async def authorize(self, request: AuthorizationRequest) -> Recorded:
        """One autocommitted statement records the operation and, when approved, its
        authorization, unless the reference is taken (see `record_authorization`); a taken
        reference replays the operation holding it. An off-session payment that cites the setup
        of its card reads that setup first, when the card's issuer needs it for its decision
        (a setup never changes once recorded, so reading it apart is safe)."""
        _validate_authorization_request(request)
        fingerprint = request.fingerprint()
        initial_setup = None
        if request.cites_initial_setup(profile_for(request.card_number.reveal())):
            assert request.initial_network_transaction_id is not None
            async with single_statement(self._engine) as db:
                initial_setup = await SqlAcquirerRepository(db).find_setup(
                    request.initial_network_transaction_id
                )
        async with single_statement(self._engine) as db:
            # Decided, and its time stamped, once the connection is held: a sale settles at
            # that time, and taking the connection may open one (bounded by the connect
            # timeout, not the pool's wait), which the settlement grace does not count.
            operation, authorization = self._decide_authorization(
                request, fingerprint, initial_setup
            )
            outcome = await SqlAcquirerRepository(db).record_authorization(operation, authorization)
        if outcome.recorded:
            return Recorded(operation, replayed=False)
        existing = outcome.existing
        if existing is None:
            # A concurrent duplicate recorded it after this statement's snapshot was taken.
            existing = await self._find(request.reference)
            if existing is None:
                raise AssertionError(
                    f"reference {request.reference!r} was taken but is not recorded"
                )
        return self._replay(existing, fingerprint)

    def _decide_authorization(
        self,
        request: AuthorizationRequest,
        fingerprint: dict[str, object],
        initial_setup: Authorization | None = None,
    ) -> tuple[Operation, Authorization | None]:
        """The operation an authorization records and the authorization it holds, if any.
        `initial_setup`: the setup the request cites, as the issuer found it."""
        now = self._clock.now()
        profile = profile_for(request.card_number.reveal())
        assessment = assess_card(request, profile, now.date(), initial_setup)
        operation_id = new_id("op")
        network_transaction_id = (
            None
            if assessment.network_status is NetworkStatus.NOT_SENT_TO_NETWORK
            else _network_transaction_id()
        )
        authorization_id: str | None = None
        authorization: Authorization | None = None
        if assessment.approved:
            authorization_id = new_id("auth")
            authorization = Authorization(
                id=authorization_id,
                merchant_id=request.merchant_id,
                currency=request.currency,
                authorized_minor=request.amount_minor,
                captured_minor=request.amount_minor if request.capture else 0,
                refunded_minor=0,
                state=AuthorizationState.CLOSED if request.capture else AuthorizationState.OPEN,
                card=request.card_summary(profile.funding),
                created_at=now,
                updated_at=now,
                network_transaction_id=network_transaction_id,
                three_d_secure_authenticated=request.three_d_secure_authenticated,
                setup_off_session=request.setup_off_session,
            )
        decline = assessment.decline
        captured = assessment.approved and request.capture
        result = AuthorizationResult(
            approved=assessment.approved,
            authorization_id=authorization_id,
            operation_id=operation_id,
            network_status=assessment.network_status,
            code=None if decline is None else decline.code,
            decline_code=None if decline is None else decline.decline_code,
            message=None if decline is None else decline.message,
            cvc_check=assessment.cvc_check,
            address_line1_check=assessment.address_line1_check,
            address_postal_code_check=assessment.address_postal_code_check,
            risk=assessment.risk,
            captured=captured,
            network_transaction_id=network_transaction_id,
            authorization_code=_authorization_code() if assessment.approved else None,
            bypass_pending=assessment.approved and profile.bypass_pending,
            dispute_expected=assessment.approved and profile.dispute_expected,
        )
        operation = Operation(
            id=operation_id,
            reference=request.reference,
            kind=OperationKind.AUTHORIZE,
            authorization_id=authorization_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            merchant_id=request.merchant_id,
            approved=assessment.approved,
            code=result.code,
            message=result.message,
            created_at=now,
            request=fingerprint,
            authorization_result=result,
            fee_minor=capture_fee_minor(request.amount_minor) if captured else 0,
            settled_at=now if captured else None,
        )
        return operation, authorization

    async def _transition(
        self,
        kind: OperationKind,
        reference: str,
        authorization_id: str,
        request: dict[str, object],
        decide: Callable[[Authorization, datetime], Transition],
    ) -> Recorded:
        async def perform(repository: SqlAcquirerRepository) -> Operation:
            authorization = await repository.lock_authorization(authorization_id)
            if authorization is None:
                raise not_found("authorization", authorization_id, param="authorization_id")
            now = self._clock.now()
            transition = decide(authorization, now)
            refusal = transition.refusal
            if refusal is None:
                await repository.save_authorization(transition.authorization)
            settles = refusal is None and kind in (OperationKind.CAPTURE, OperationKind.REFUND)
            return Operation(
                id=new_id("op"),
                reference=reference,
                kind=kind,
                authorization_id=authorization.id,
                amount_minor=transition.amount_minor,
                currency=authorization.currency,
                merchant_id=authorization.merchant_id,
                approved=refusal is None,
                code=None if refusal is None else refusal.code,
                message=None if refusal is None else refusal.message,
                created_at=now,
                request=request,
                authorization_result=None,
                fee_minor=capture_fee_minor(transition.amount_minor)
                if settles and kind is OperationKind.CAPTURE
                else 0,
                settled_at=now if settles else None,
                # Inserted in this transaction, with the authorization's update that closes
                # it: the release is recorded with the capture or void, or not at all.
                released_minor=0 if refusal is not None else transition.released_minor,
            )

        return await self._record_once(reference, request, perform)

    async def capture(
        self, reference: str, authorization_id: str, amount_minor: int, *, keep_open: bool
    ) -> Recorded:
        _validate_reference(reference)
        _validate_amount(amount_minor)
        request: dict[str, object] = {
            "kind": OperationKind.CAPTURE.value,
            "authorization_id": authorization_id,
            "amount": amount_minor,
            "keep_open": keep_open,
        }
        return await self._transition(
            OperationKind.CAPTURE, reference, authorization_id, request,
            lambda authorization, now: capture(
                authorization, amount_minor, keep_open=keep_open, now=now
            ),
        )  # fmt: skip

    async def void(self, reference: str, authorization_id: str) -> Recorded:
        _validate_reference(reference)
        request: dict[str, object] = {
            "kind": OperationKind.VOID.value,
            "authorization_id": authorization_id,
        }
        return await self._transition(
            OperationKind.VOID, reference, authorization_id, request,
            lambda authorization, now: void(authorization, now=now),
        )  # fmt: skip

    async def refund(self, reference: str, authorization_id: str, amount_minor: int) -> Recorded:
        _validate_reference(reference)
        _validate_amount(amount_minor)
        request: dict[str, object] = {
            "kind": OperationKind.REFUND.value,
            "authorization_id": authorization_id,
            "amount": amount_minor,
        }
        return await self._transition(
            OperationKind.REFUND, reference, authorization_id, request,
            lambda authorization, now: refund(authorization, amount_minor, now=now),
        )  # fmt: skip

    async def lookup(self, reference: str) -> Operation:
        _validate_reference(reference)
        operation = await self._find(reference)
        if operation is None:
            raise not_found("operation", reference, param="reference")
        return operation

    async def get_authorization(self, authorization_id: str) -> Authorization:
        async with self._engine.begin() as db:
            authorization = await SqlAcquirerRepository(db).get_authorization(authorization_id)
        if authorization is None:
            raise not_found("authorization", authorization_id, param="authorization_id")
        return authorization

    def report_day(
        self, value: str, *, allow_partial: bool, resumed: ResumedReport | None = None
    ) -> ReportDay:
        """The day a settlement report for `value` covers (`remit.core.settlement_days`), on
        the acquirer's clock, the one that stamps the operations: partial until every
        transaction that may have stamped a time of that day has ended (the grace).

        Judged at the report's first page only: a later page (`resumed`, from its token) is
        the first page's snapshot, and is what that page was judged, whatever the clock says
        now. A partial report is continued only by a request that takes one (`allow_partial`).
        """
        if resumed is not None and resumed.partial is not None:
            # The token is not authenticated, so what it says is honoured only as far as the
            # clock bears it out: a day not begun, or not over, is refused as on a first page,
            # and a report the token calls whole is partial while the day is still within its
            # grace. Judged with the clock's reading error in the token's favour, so that
            # another replica's clock, or a re-reading a moment behind, does not turn a page
            # of a report judged a moment ago.
            lenient = self._clock.now() + timedelta(seconds=CLOCK_ERROR_S)
            day = settlement_day(value, now=lenient, allow_partial=True, grace=self._grace)
            partial = resumed.partial or is_partial(day, now=lenient, grace=self._grace)
            if partial and not allow_partial:
                raise invalid(
                    "page_token continues a partial report (its first page was read before "
                    f"{day} was over), which only a request with allow_partial reads: set "
                    "allow_partial, or read the report again from its first page, without "
                    "page_token, once the day is over.",
                    "page_token",
                )
            return ReportDay(day, partial)
        # The first page; or a token of the version before, which did not say: judged now.
        now = self._clock.now()
        day = settlement_day(value, now=now, allow_partial=allow_partial, grace=self._grace)
        return ReportDay(day, is_partial(day, now=now, grace=self._grace))

    async def settlement_page(
        self,
        day: date,
        merchant_id: str | None = None,
        *,
        after: SettlementCursor | None = None,
        limit: int | None = None,
    ) -> SettlementPage:
        """The first `limit` captures and refunds (all when None) settled on `day` (UTC) after
        `after`, oldest first, as the report's snapshot has them: `after`'s, or for the first
        page (`after` None) the database's now (`remit.acquirer.settlement_pages`)."""
        start = datetime.combine(day, time.min, tzinfo=UTC)
        async with self._engine.begin() as db:
            repository = SqlAcquirerRepository(db)
            snapshot = await repository.current_snapshot() if after is None else after.snapshot
            settled = await repository.settled_between(
                start,
                start + timedelta(days=1),
                merchant_id,
                snapshot=snapshot,
                after=None if after is None else (after.settled_at, after.operation_id),
                # One more than the page, to know without another query whether one follows.
                limit=None if limit is None else limit + 1,
            )
        rows = [settlement_row(operation) for operation in settled[:limit]]
        more = limit is not None and len(settled) > limit
        return SettlementPage(rows, SettlementCursor.after(rows[-1], snapshot) if more else None)
