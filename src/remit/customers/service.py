"""Customer use cases. Each public method is one unit of work."""

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.ids import new_id
from remit.core.metadata import MAX_METADATA_KEYS
from remit.customers.domain import (
    Customer,
    CustomerFields,
    new_customer,
    update_customer,
)
from remit.customers.repository import SqlCustomerRepository
from remit.payment_methods.repository import SqlPaymentMethodRepository
from remit.payments.keyed import Done, Keyed, Replay, run_keyed, value_of

if TYPE_CHECKING:
    from remit.payment_methods.service import MethodToAttach, PaymentMethodsService

MAX_LIST_LIMIT = 100
DEFAULT_METHOD_PARAM: Final = "invoice_settings[default_payment_method]"


class CustomersError(RemitError):
    """Root of the errors the customers service raises."""


def _check_metadata(customer: Customer) -> None:
    if len(customer.metadata) > MAX_METADATA_KEYS:
        raise invalid(
            f"Invalid metadata: a customer can have at most {MAX_METADATA_KEYS} keys.", "metadata"
        )


async def _check_default_method(
    db: AsyncConnection, customer: Customer, *, refusal_kind: ErrorKind
) -> None:
    """A customer's default payment method must be one attached to it, as in Stripe.

    `refusal_kind` says what a refusal is: on an update, the payment method's state
    (FAILED_PRECONDITION, stored under the request's idempotency key, so that a retry after
    the method was attached replays the refusal instead of answering a second way); on a
    create, the parameters' (INVALID_ARGUMENT), as a new customer holds no payment method but
    the one it is created with, whatever state the named one is in."""
    method_id = customer.default_payment_method_id
    if method_id is None:
        return
    method = await SqlPaymentMethodRepository(db).get(customer.account_id, method_id)
    if method is None:
        raise not_found("payment_method", method_id, param=DEFAULT_METHOD_PARAM)
    if method.customer_id != customer.id:
        raise CustomersError(
            message=f"The customer does not have a payment method with the ID {method_id}. "
            "The payment method must be attached to the customer.",
            kind=refusal_kind,
            code="parameter_invalid",
            param=DEFAULT_METHOD_PARAM,
        )


def _default_named_by_attach(
    fields: CustomerFields, payment_method_id: str | None, method: "MethodToAttach | None"
) -> CustomerFields:
    """A create may name as default the payment method it attaches, by the id it gave as
    `payment_method`: a test id's default is then the new payment method it becomes."""
    if method is None or fields.default_payment_method != payment_method_id:
        return fields
    return replace(fields, default_payment_method=method.attached_id)


class CustomerHooks(Protocol):
    """Called in the transaction of each change (events); an exception rolls it back."""

    async def customer_changed(
        self, db: AsyncConnection, before: Customer | None, after: Customer
    ) -> None: ...


class NoCustomerHooks:
    async def customer_changed(
        self, db: AsyncConnection, before: Customer | None, after: Customer
    ) -> None:
        return None


class CustomersService:
    def __init__(
        self,
        engine: AsyncEngine,
        payment_methods: "PaymentMethodsService",
        clock: Clock | None = None,
        hooks: CustomerHooks | None = None,
    ) -> None:
        self._engine = engine
        self._payment_methods = payment_methods
        self._clock = clock or SystemClock()
        self._hooks = hooks or NoCustomerHooks()

    async def create(
        self, account_id: str, fields: CustomerFields, *, payment_method_id: str | None = None
    ) -> Customer:
        return value_of(
            await self.create_once(account_id, None, fields, payment_method_id=payment_method_id)
        )

    async def create_once(
        self,
        account_id: str,
        keyed: Keyed[Customer] | None,
        fields: CustomerFields,
        *,
        payment_method_id: str | None = None,
    ) -> Done[Customer] | Replay:
        """A new customer; under a client key, one customer however often it is retried, and
        a test id given as its payment method becomes one payment method, not one per retry.
        Its default payment method can only be the one it is created with."""
        # A test id's card is asked of the vault here, outside the transaction; the payment
        # method it becomes is made in the transaction, once the key is known to be new.
        method = (
            None
            if payment_method_id is None
            else await self._payment_methods.to_attach(account_id, payment_method_id)
        )
        customer = new_customer(
            _default_named_by_attach(fields, payment_method_id, method),
            customer_id=new_id("cus"),
            account_id=account_id,
            now=self._clock.now(),
        )
        _check_metadata(customer)

        async def insert(db: AsyncConnection) -> Customer:
            await SqlCustomerRepository(db).insert(customer)
            await self._hooks.customer_changed(db, None, customer)
            if method is not None:
                await self._payment_methods.attach_named_in(db, account_id, method, customer.id)
            await _check_default_method(db, customer, refusal_kind=ErrorKind.INVALID_ARGUMENT)
            return customer

        return await run_keyed(self._engine, keyed, self._clock.now(), insert)

    async def get(
        self, account_id: str, customer_id: str, *, include_deleted: bool = False
    ) -> Customer:
        """A live customer; with `include_deleted`, a deleted one too (`deleted_at` set), which
        a retrieve answers with Stripe's deleted stub."""
        async with self._engine.begin() as db:
            customer = await SqlCustomerRepository(db).get(
                account_id, customer_id, include_deleted=include_deleted
            )
        if customer is None:
            raise not_found("customer", customer_id)
        return customer

    async def update(self, account_id: str, customer_id: str, changes: CustomerFields) -> Customer:
        return value_of(await self.update_once(account_id, None, customer_id, changes))

    async def update_once(
        self,
        account_id: str,
        keyed: Keyed[Customer] | None,
        customer_id: str,
        changes: CustomerFields,
    ) -> Done[Customer] | Replay:
        async def change(db: AsyncConnection) -> Customer:
            repo = SqlCustomerRepository(db)
            customer = await repo.get(account_id, customer_id, for_update=True)
            if customer is None:
                raise not_found("customer", customer_id)
            updated = update_customer(customer, changes)
            if changes.default_payment_method:
                await _check_default_method(db, updated, refusal_kind=ErrorKind.FAILED_PRECONDITION)
            await repo.save(updated)
            await self._hooks.customer_changed(db, customer, updated)
            return updated

        return await run_keyed(self._engine, keyed, self._clock.now(), change)

    async def delete(self, account_id: str, customer_id: str) -> Customer:
        """Delete the customer and detach its payment methods.

        Each payment method is detached as an explicit detach does it, with its own
        payment_method.detached event, before the customer.deleted event: the order in which
        a merchant detaching the cards and then deleting the customer would get them. They are
        detached in batches, each committed in a transaction of its own with the customer
        locked, and the customer is deleted in the transaction of the last batch, so that no
        card is left attached to a deleted customer. A customer with thousands of cards is
        not deleted in one long transaction, which a caller's deadline shorter than it would
        roll back on every retry: a delete cut short keeps its committed batches, and the
        retry goes on from there.

        A delete of a deleted customer (a retry, or a twin waiting on the row lock, which then
        finds it deleted) is a 404 that changes nothing and records no event; DELETE takes no
        idempotency key, in Stripe and here."""
        while True:
            async with self._engine.begin() as db:
                repo = SqlCustomerRepository(db)
                customer = await repo.get(account_id, customer_id, for_update=True)
                if customer is None:
                    raise not_found("customer", customer_id)
                if not await self._payment_methods.detach_a_batch_of_deleted_in(db, customer):
                    continue  # this batch commits; the next transaction takes the next one
                deleted = replace(customer, deleted_at=self._clock.now())
                await repo.save(deleted)
                await self._hooks.customer_changed(db, customer, deleted)
            return deleted

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        email: str | None = None,
        created: tuple[datetime | None, datetime | None, datetime | None, datetime | None] = (
            None, None, None, None,
        ),
    ) -> tuple[list[Customer], bool]:  # fmt: skip
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            repo = SqlCustomerRepository(db)

            async def cursor(customer_id: str | None, param: str) -> tuple[datetime, str] | None:
                if customer_id is None:
                    return None
                # A customer deleted since the previous page still marks its place in the
                # (created_at, id) order, so paging on while deleting what was listed works.
                anchor = await repo.get(account_id, customer_id, include_deleted=True)
                if anchor is None:
                    raise not_found("customer", customer_id, param=param)
                return anchor.created_at, anchor.id

            return await repo.list(
                account_id,
                limit=limit,
                starting_after=await cursor(starting_after, "starting_after"),
                ending_before=await cursor(ending_before, "ending_before"),
                email=email,
                created=created,
            )


async def forget_default_method_in(
    db: AsyncConnection, customer: Customer, method_id: str, hooks: CustomerHooks
) -> None:
    """Detaching a customer's default payment method clears the default, as in Stripe; inside
    the detach's transaction, with the customer locked."""
    if customer.default_payment_method_id != method_id:
        return
    cleared = replace(customer, default_payment_method_id=None)
    await SqlCustomerRepository(db).save(cleared)
    await hooks.customer_changed(db, customer, cleared)
