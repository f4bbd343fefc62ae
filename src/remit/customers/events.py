"""Stripe's customer.* and payment_method.attached/.detached/.updated events, recorded through the
webhooks outbox in the transaction of the change (the hooks the customers and payment methods
services call)."""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.clock import Clock, SystemClock
from remit.core.jsonview import JsonObject, to_json
from remit.customers.domain import Customer
from remit.customers.grpc import customer_message
from remit.payment_methods.domain import PaymentMethod
from remit.payment_methods.grpc import payment_method_message
from remit.payments.requests import current_request
from remit.versioning.previous_attributes import changed_attributes
from remit.webhooks.outbox import record_event


class CustomerEvents:
    """CustomerHooks and PaymentMethodHooks that record events."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    async def _emit(
        self,
        db: AsyncConnection,
        account_id: str,
        event_type: str,
        data_object: JsonObject,
        previous: JsonObject | None = None,
    ) -> None:
        request = current_request.get()
        await record_event(
            db,
            account_id=account_id,
            type=event_type,
            data_object=data_object,
            now=self._now(),
            previous_attributes=previous or None,
            request_id=None if request is None else request.request_id,
            idempotency_key=None if request is None else request.idempotency_key,
        )

    def _now(self) -> datetime:
        return self._clock.now()

    async def customer_changed(
        self, db: AsyncConnection, before: Customer | None, after: Customer
    ) -> None:
        after_json = to_json(customer_message(after))
        if before is None:
            await self._emit(db, after.account_id, "customer.created", after_json)
        elif after.deleted_at is not None and before.deleted_at is None:
            await self._emit(db, after.account_id, "customer.deleted", after_json)
        else:
            previous = changed_attributes(to_json(customer_message(before)), after_json)
            if previous:  # an update that changes nothing is no event
                await self._emit(db, after.account_id, "customer.updated", after_json, previous)

    async def payment_method_changed(
        self, db: AsyncConnection, before: PaymentMethod, after: PaymentMethod
    ) -> None:
        after_json = to_json(payment_method_message(after))
        if before.customer_id == after.customer_id:
            # Its billing details, metadata, expiry or allow_redisplay (the update endpoint).
            previous = changed_attributes(to_json(payment_method_message(before)), after_json)
            if previous:  # an update that changes nothing is no event
                await self._emit(
                    db, after.account_id, "payment_method.updated", after_json, previous
                )
            return
        if after.customer_id is not None:
            await self._emit(db, after.account_id, "payment_method.attached", after_json)
        else:
            previous = changed_attributes(to_json(payment_method_message(before)), after_json)
            await self._emit(db, after.account_id, "payment_method.detached", after_json, previous)
