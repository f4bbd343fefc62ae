"""What the payments service needs from elsewhere, as small interfaces.

Payment methods (owned by the payment-methods module and the vault), and hooks that other
parts of the core (the ledger, events) attach to money movements. Hooks run inside the same
database transaction as the state change that causes them, so both commit or neither does.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payments.charges import CardSnapshot, Charge, Refund
from remit.payments.domain import PaymentIntent


@dataclass(frozen=True)
class ChargeableCard:
    """A payment method the network can be asked to charge: a vault token and what may be
    shown about the card."""

    payment_method_id: str
    vault_token: str
    card: CardSnapshot
    customer_id: str | None = None


class PaymentMethodSource(Protocol):
    async def chargeable_card(
        self, db: AsyncConnection, account_id: str, payment_method_id: str
    ) -> ChargeableCard:
        """The card behind a payment method of this account (NOT_FOUND if there is none)."""
        ...


class PaymentHooks(Protocol):
    """Called in the transaction of the change; an exception rolls the change back."""

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None: ...

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None: ...

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None: ...


class HookChain:
    """Runs several hook sets in order."""

    def __init__(self, hooks: Sequence[PaymentHooks] = ()) -> None:
        self._hooks = list(hooks)

    def add(self, hooks: PaymentHooks) -> None:
        self._hooks.append(hooks)

    async def intent_changed(
        self, db: AsyncConnection, before: PaymentIntent | None, after: PaymentIntent
    ) -> None:
        for hooks in self._hooks:
            await hooks.intent_changed(db, before, after)

    async def charge_changed(
        self, db: AsyncConnection, before: Charge | None, after: Charge, intent: PaymentIntent
    ) -> None:
        for hooks in self._hooks:
            await hooks.charge_changed(db, before, after, intent)

    async def refund_changed(
        self, db: AsyncConnection, before: Refund | None, after: Refund, charge: Charge
    ) -> None:
        for hooks in self._hooks:
            await hooks.refund_changed(db, before, after, charge)
