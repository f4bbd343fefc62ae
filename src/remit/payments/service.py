"""Payment use cases. Each public method is one unit of work and the only place that commits."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.currency import SUPPORTED_CURRENCIES
from remit.core.errors import RemitError, invalid, not_found
from remit.core.ids import new_id, random_token
from remit.payments.domain import NewPaymentIntent, PaymentIntent, create_intent
from remit.payments.repository import SqlPaymentIntentRepository

MAX_AMOUNT_MINOR = 99_999_999
MAX_LIST_LIMIT = 100


class PaymentsError(RemitError):
    """Root of the errors the payments service raises."""


@dataclass(frozen=True)
class CreatedRange:
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None


def validate_new_intent(new: NewPaymentIntent) -> None:
    if new.amount_minor < 1:
        raise invalid(
            "This value must be greater than or equal to 1.", "amount", code="amount_too_small"
        )
    if new.amount_minor > MAX_AMOUNT_MINOR:
        raise invalid(
            f"Amount must be no more than {MAX_AMOUNT_MINOR}.", "amount", code="amount_too_large"
        )
    if new.currency not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {new.currency}.", "currency", code="invalid_currency")


class PaymentsService:
    def __init__(self, engine: AsyncEngine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()

    async def create_payment_intent(self, account_id: str, new: NewPaymentIntent) -> PaymentIntent:
        validate_new_intent(new)
        intent_id = new_id("pi")
        intent = create_intent(
            new,
            intent_id=intent_id,
            account_id=account_id,
            # The client secret lets a browser confirm this one intent; it embeds the id so a
            # secret can never be replayed against another intent.
            client_secret=f"{intent_id}_secret_{random_token()}",
            now=self._clock.now(),
        )
        async with self._engine.begin() as db:
            await SqlPaymentIntentRepository(db).insert(intent)
        return intent

    async def get_payment_intent(self, account_id: str, intent_id: str) -> PaymentIntent:
        async with self._engine.connect() as db:
            intent = await SqlPaymentIntentRepository(db).get(account_id, intent_id)
        if intent is None:
            raise not_found("payment_intent", intent_id, param="intent")
        return intent

    async def list_payment_intents(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedRange | None = None,
        customer_id: str | None = None,
    ) -> tuple[list[PaymentIntent], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        bounds = created or CreatedRange()
        async with self._engine.connect() as db:
            repo = SqlPaymentIntentRepository(db)

            async def cursor(intent_id: str | None, param: str) -> tuple[datetime, str] | None:
                if intent_id is None:
                    return None
                anchor = await repo.get(account_id, intent_id)
                if anchor is None:
                    raise not_found("payment_intent", intent_id, param=param)
                return anchor.created_at, anchor.id

            return await repo.list(
                account_id,
                limit=limit,
                starting_after=await cursor(starting_after, "starting_after"),
                ending_before=await cursor(ending_before, "ending_before"),
                created_gt=bounds.gt,
                created_gte=bounds.gte,
                created_lt=bounds.lt,
                created_lte=bounds.lte,
                customer_id=customer_id,
            )
