"""PaymentMethod and Token use cases. Each public method is one unit of work.

Card details come from the vault (a vault token from the facade's tokenization, a tok_ from
CreateToken, or a Stripe test id resolved to a test card); the core stores the vault token and
the public details only.

A vault token given to a create is a card the facade has just stored at the vault for that
request alone: every tokenization makes a new token (only a test id's card is shared, and the
facade never gives one as a vault token). If the request does not keep it, because it replays
the first answer of its key (made with an earlier tokenization of the card) or is refused,
nothing will ever use the card, and it is deleted at the vault (`_handed_over`): a card number
is not kept without a need. A request whose outcome is unknown (the database lost around its
commit), or that never reaches the core, leaves its card behind.

For the payments service: `to_charge(account_id, pm_id)` returns the payment method to pay
with, whose vault token an authorization is forwarded with. A Stripe test id (`pm_card_visa`)
becomes a new payment method of the account each time a payment or a payment intent names it,
as with Stripe (the intent stores the new payment method's id, not the test id); it is written
by `save_named_in`, in the transaction of the payment or the intent's create or update. So is
the payment method an intent's create or confirmation makes of the card it is given (Stripe's
`payment_method_data`): `pay_with_new_method`.
"""

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, invalid, not_found
from remit.core.ids import has_prefix, new_id
from remit.core.metadata import updated_metadata
from remit.customers.domain import Customer
from remit.customers.repository import SqlCustomerRepository
from remit.customers.service import CustomerHooks, NoCustomerHooks, forget_default_method_in
from remit.payment_methods.domain import (
    UNSPECIFIED_REDISPLAY,
    NewPaymentMethod,
    PaymentMethod,
    PaymentMethodChanges,
    Token,
    VaultCard,
    another_customers_method,
    billing_from_token,
    client_ip_address,
    merge_billing_details,
    spent_payment_method,
)
from remit.payment_methods.repository import (
    METHOD_DETACHED,
    METHOD_MISSING,
    METHOD_OF_ANOTHER_CUSTOMER,
    METHOD_SPENT_ELSEWHERE,
    SqlPaymentMethodRepository,
)
from remit.payment_methods.vault_client import TEST_CARD_SHARED, CardVault, FingerprintVault
from remit.payments import idempotency
from remit.payments.idempotency import IdempotencyMismatchError
from remit.payments.keyed import Done, Keyed, KeyedCall, Replay, run_keyed, value_of
from remit.storage import fastsql
from remit.storage.engine import single_statement
from remit.storage.fastsql import Refusals
from remit.vault.test_cards import is_test_id, is_test_payment_method_id

log = logging.getLogger(__name__)

MAX_LIST_LIMIT = 100
# How many of a deleted customer's payment methods are detached at a time: enough that a
# customer with a handful takes one batch, few enough that the events held on the client for
# one batch stay small whatever the customer holds.
DETACH_BATCH = 500
T = TypeVar("T")
R = TypeVar("R")
_MAX_EXPIRY_YEARS_AHEAD = 50
# Where a payment names the tok_ its new payment method spends (Stripe's payment_method_data).
_DATA_TOKEN_PARAM = "payment_method_data[card][token]"  # noqa: S105 (a parameter name)


class PaymentMethodsError(RemitError):
    """Root of the errors the payment methods service raises."""


def _unexpected_state(message: str, param: str | None = None) -> PaymentMethodsError:
    """A refusal by the payment method's state (not attached, attached elsewhere, detached):
    a FAILED_PRECONDITION, which a call under an idempotency key stores and replays
    (`payments.keyed`), since a retry after the state changed must not get a second outcome.
    The REST answer is Stripe's 400 all the same."""
    return PaymentMethodsError(
        message=message,
        kind=ErrorKind.FAILED_PRECONDITION,
        code="payment_method_unexpected_state",
        param=param,
    )


def _unusable(method_id: str) -> PaymentMethodsError:
    return _unexpected_state(
        f"The PaymentMethod {method_id} was previously detached from a Customer and "
        "may not be used again.",
        "payment_method",
    )


def _answered(outcome: object) -> bool:
    """Whether an outcome is an answer, not a refusal: the answer holds the card it was made
    with."""
    return not isinstance(outcome, RemitError)


@dataclass(frozen=True)
class MethodToAttach:
    """A payment method a request names to attach, ready for the transaction that attaches it:
    one of the account's (`method_id`), or a Stripe test id with its test card, which becomes
    a new payment method in that transaction. Made there, after the idempotency key is
    checked, it is not made by a request that replays its key's answer or is refused."""

    method_id: str
    test_card: VaultCard | None = None
    # For a test id: the id its new payment method will have, chosen here so that the request
    # can name it (as the customer's default) before the transaction makes it.
    new_method_id: str | None = None

    @property
    def attached_id(self) -> str:
        """The id of the payment method the attach leaves attached."""
        return self.new_method_id or self.method_id


@dataclass(frozen=True)
class MethodToCharge:
    """A payment method a payment or an intent names, ready for the transaction that uses it
    (the payment's, or the intent's create or update): one of the account's, read already, or
    the new payment method of a Stripe test id's card (`is_new`), which `save_named_in` writes
    in that transaction. Written there, after the idempotency key is checked, it is not made by
    a request that replays its key's answer or is refused."""

    method: PaymentMethod
    is_new: bool = False
    # The tok_ a new payment method is made of, spent when it is written (a test token such as
    # tok_visa is not stored, so it is never spent).
    spends_token: str | None = None


class PaymentMethodHooks(Protocol):
    """Called in the transaction of each attach, detach or update (events); an exception rolls
    it back."""

    async def payment_method_changed(
        self, db: AsyncConnection, before: PaymentMethod, after: PaymentMethod
    ) -> None: ...


class NoPaymentMethodHooks:
    async def payment_method_changed(
        self, db: AsyncConnection, before: PaymentMethod, after: PaymentMethod
    ) -> None:
        return None


class PaymentMethodsService:
    def __init__(
        self,
        engine: AsyncEngine,
        vault: CardVault,
        clock: Clock | None = None,
        hooks: PaymentMethodHooks | None = None,
        customer_hooks: CustomerHooks | None = None,
        fingerprint_checks: FingerprintVault | None = None,
    ) -> None:
        self._engine = engine
        self._vault = vault
        # Tells whether a key recorded a card by the fingerprint every account shared before
        # vault migration 0010 (`_by_recorded_card`); without it, such a retry is refused.
        self._fingerprint_checks = fingerprint_checks
        self._clock = clock or SystemClock()
        self.hooks: PaymentMethodHooks = hooks or NoPaymentMethodHooks()
        # For the customers a detach changes (their default payment method cleared).
        self._customer_hooks: CustomerHooks = customer_hooks or NoCustomerHooks()

    # --- creating ----------------------------------------------------------------------

    async def create(self, account_id: str, new: NewPaymentMethod) -> PaymentMethod:
        return value_of(await self.create_once(account_id, None, new))

    async def create_once(
        self, account_id: str, keyed: Keyed[PaymentMethod] | None, new: NewPaymentMethod
    ) -> Done[PaymentMethod] | Replay:
        """A new payment method; under a client key, one however often it is retried. A card
        given as a vault token is identified by the card, not the token: the facade tokenizes
        the card again on every retry, so the caller leaves the token out of the key's request
        and this adds the card's fingerprint and expiry."""
        sources = [s for s in (new.vault_token, new.token_id, new.payment_method_id) if s]
        if len(sources) != 1:
            raise invalid("Give the card as exactly one of card[token] or payment_method.", "card")
        if new.vault_token is not None:
            card = await self._vault.card_details(account_id, new.vault_token)
            return await self._handed_over(
                account_id,
                new.vault_token,
                lambda: self._by_recorded_card(
                    account_id, keyed, card, lambda k: self._insert_once(account_id, k, card, new)
                ),
            )
        if new.token_id is not None:
            return await self._create_from_token(account_id, keyed, new.token_id, new)
        assert new.payment_method_id is not None
        if is_test_payment_method_id(new.payment_method_id):
            # The test card itself: resolving the test id would make a second payment method,
            # and one more on every retry that only replays.
            card = await self._vault.resolve_test_card(account_id, new.payment_method_id)
            return await self._insert_once(account_id, keyed, card, new)
        source = _copyable(await self.resolve_for_use(account_id, new.payment_method_id))
        return await self._insert_once(
            account_id,
            keyed,
            VaultCard(source.vault_token, source.card, source.test_id),
            replace(new, billing_details=new.billing_details or source.billing_details),
        )

    async def _create_from_token(
        self,
        account_id: str,
        keyed: Keyed[PaymentMethod] | None,
        token_id: str,
        new: NewPaymentMethod,
    ) -> Done[PaymentMethod] | Replay:
        if is_test_id(token_id):
            card = await self._vault.resolve_test_card(account_id, token_id)
            return await self._insert_once(account_id, keyed, card, new, test_id=token_id)

        async def use_token(db: AsyncConnection) -> PaymentMethod:
            repo = SqlPaymentMethodRepository(db)
            token = _unspent(
                await repo.get_token(account_id, token_id, for_update=True), token_id, "card[token]"
            )
            await repo.mark_token_used(account_id, token_id)
            billing = merge_billing_details(billing_from_token(token), new.billing_details)
            card = VaultCard(token.vault_token, token.card, token.test_id)
            method = self._new_method(account_id, card, replace(new, billing_details=billing))
            await repo.insert(method)
            return method

        return await run_keyed(self._engine, keyed, self._clock.now(), use_token)

    async def _handed_over(
        self,
        account_id: str,
        vault_token: str,
        create: Callable[[], Awaitable[Done[T] | Replay]],
        keeps_card: Callable[[T | RemitError], bool] = _answered,
    ) -> Done[T] | Replay:
        """`create`, made with the card the facade has just stored for this request; the card
        is deleted at the vault unless the outcome keeps it. A replay keeps the object the
        key's first request made, with the card of that request; a refusal (`RemitError`)
        rolled everything back. `keeps_card` tells the others apart where an answer may not
        hold the card, or an error may come after the card was stored (a declined payment).
        Any other error may have come after the commit, so it keeps the card."""
        try:
            result = await create()
        except RemitError as error:
            if not keeps_card(error):
                await self.delete_unused_card(account_id, vault_token)
            raise
        if isinstance(result, Replay) or not keeps_card(result.value):
            await self.delete_unused_card(account_id, vault_token)
        return result

    async def delete_unused_card(self, account_id: str, vault_token: str) -> None:
        """Delete the vault card handed over for a request that made nothing of it (refused,
        here or by the gRPC layer before it got here, or replayed) unless a payment method or
        token holds it (a caller that gave a card already in use). Best effort: the answer
        stands whatever happens here, and what went wrong is logged (the core never holds card
        data, so no error of it carries any)."""
        try:
            async with self._engine.begin() as db:
                held = await SqlPaymentMethodRepository(db).vault_card_held(vault_token)
            if held:
                # Expected, not a fault: the request's stored attempt or payment method uses it.
                log.debug("vault card %s is in use; it is not deleted", vault_token)
                return
            await self._vault.delete_card(account_id, vault_token)
        except Exception as error:  # the request's answer must not depend on the clean-up
            log.warning(
                "the unused vault card %s could not be deleted: %s: %s",
                vault_token,
                type(error).__name__,
                error,
            )

    def _new_method(
        self,
        account_id: str,
        card: VaultCard,
        new: NewPaymentMethod,
        test_id: str | None = None,
        method_id: str | None = None,
    ) -> PaymentMethod:
        return PaymentMethod(
            id=method_id or new_id("pm"),
            account_id=account_id,
            vault_token=card.vault_token,
            card=card.card,
            created_at=self._clock.now(),
            billing_details=merge_billing_details({}, new.billing_details),
            metadata=dict(new.metadata),
            allow_redisplay=new.allow_redisplay or UNSPECIFIED_REDISPLAY,
            test_id=test_id or card.test_id,
        )

    async def _insert(
        self, account_id: str, card: VaultCard, new: NewPaymentMethod, test_id: str | None = None
    ) -> PaymentMethod:
        method = self._new_method(account_id, card, new, test_id)
        async with single_statement(self._engine) as db:
            await SqlPaymentMethodRepository(db).insert(method)
        return method

    async def _insert_once(
        self,
        account_id: str,
        keyed: Keyed[PaymentMethod] | None,
        card: VaultCard,
        new: NewPaymentMethod,
        test_id: str | None = None,
    ) -> Done[PaymentMethod] | Replay:
        if keyed is None:
            return Done(await self._insert(account_id, card, new, test_id))
        method = self._new_method(account_id, card, new, test_id)

        async def insert(db: AsyncConnection) -> PaymentMethod:
            await SqlPaymentMethodRepository(db).insert(method)
            return method

        return await run_keyed(self._engine, keyed, self._clock.now(), insert)

    async def to_attach(self, account_id: str, method_id: str) -> MethodToAttach:
        """The payment method to attach, for `attach_named_in`: what needs the vault (a test
        id's card) is asked for here, before the caller opens its transaction."""
        if is_test_payment_method_id(method_id):
            return MethodToAttach(
                method_id,
                await self._vault.resolve_test_card(account_id, method_id),
                new_method_id=new_id("pm"),
            )
        return MethodToAttach(method_id)

    async def attach_named_in(
        self, db: AsyncConnection, account_id: str, named: MethodToAttach, customer_id: str
    ) -> PaymentMethod:
        """Attach inside the caller's transaction, making a test id's payment method first."""
        repo = SqlPaymentMethodRepository(db)
        method_id = named.method_id
        if named.test_card is not None:
            method = self._new_method(
                account_id,
                named.test_card,
                NewPaymentMethod(),
                test_id=named.method_id,
                method_id=named.new_method_id,
            )
            await repo.insert(method)
            method_id = method.id
        else:
            # A missing or detached payment method is reported before a missing customer.
            found = await repo.get(account_id, method_id)
            if found is None:
                raise not_found("payment_method", method_id, param="payment_method")
            if not found.usable:
                raise _unusable(method_id)
            if found.spent_for(None):
                raise spent_payment_method()
        return await attach_in(db, account_id, method_id, customer_id, hooks=self.hooks)

    async def to_charge(self, account_id: str, method_id: str) -> MethodToCharge:
        """The payment method to pay with, for `save_named_in`; writes nothing. What needs the
        vault (a test id's card, which the vault's cache in front of it mostly answers) is asked
        for here, before the caller opens its transaction. Detached ones are refused."""
        if is_test_payment_method_id(method_id):
            card = await self._vault.resolve_test_card(account_id, method_id)
            made = self._new_method(account_id, card, NewPaymentMethod(), test_id=method_id)
            return MethodToCharge(made, is_new=True)
        return MethodToCharge(await self.resolve_for_use(account_id, method_id))

    @staticmethod
    async def save_named_in(
        db: AsyncConnection, named: MethodToCharge, *, spent_by: str | None = None
    ) -> None:
        """Write a new payment method (a test id's, or one made of a card a payment is given)
        in the caller's transaction (held, in a `fastsql.deferring` unit, to go out with its
        other writes), spending the tok_ it is made of; a saved one is stored already.
        `spent_by`: the intent a confirmation pays with it, which it is written spent on (it
        is attached to no customer), in the same statement."""
        if not named.is_new:
            return
        repo = SqlPaymentMethodRepository(db)
        token_id = named.spends_token
        if token_id is not None:
            # Checked again under lock: another request may have spent it since it was read.
            account_id = named.method.account_id
            token = await repo.get_token(account_id, token_id, for_update=True)
            _unspent(token, token_id, _DATA_TOKEN_PARAM)
            await repo.mark_token_used(account_id, token_id)
        await repo.insert(replace(named.method, spent_by_intent_id=spent_by))

    @staticmethod
    async def use_in(
        db: AsyncConnection,
        method: PaymentMethod,
        intent_id: str,
        *,
        customer_id: str | None = None,
        claim: bool = True,
    ) -> None:
        """Check, in the transaction of the attempt that pays `intent_id` (of the customer
        `customer_id`) with a saved payment method, or of the create or update that names it
        for that intent, that the method may still pay it, under its row lock: it was read
        before that transaction opened, and a detach, its customer's deletion, an attach or
        another intent's spend may have come since. The refusals are the ones a request naming
        it as it is now gets. Attached to no customer, it is spent on the intent, unless
        `claim` is false (a payment that saves it for its customer, or a request that only
        names it): then it is only checked. Within `fastsql.deferring`, the check goes out with
        the transaction's next statement, or its COMMIT."""
        method_id = method.id
        refusals: Refusals = {
            METHOD_MISSING: lambda _: not_found(
                "payment_method", method_id, param="payment_method"
            ),
            METHOD_DETACHED: lambda _: _unusable(method_id),
            METHOD_OF_ANOTHER_CUSTOMER: lambda owner: another_customers_method(
                method_id, owner, customer_id
            ),
            METHOD_SPENT_ELSEWHERE: lambda _: spent_payment_method(),
        }
        # Read attached to a customer (or spent already) it is not to be spent: a share lock
        # is enough, and payments with the same saved card do not wait for each other. If it
        # was detached or attached since, the checks see it.
        spend = claim and method.customer_id is None and method.spent_by_intent_id is None
        await SqlPaymentMethodRepository(db).use_for_payment(
            method.account_id,
            method_id,
            intent_id,
            customer_id=customer_id,
            spend=spend,
            refusals=refusals,
        )

    async def pay_with_new_method(
        self,
        account_id: str,
        call: KeyedCall,
        new: NewPaymentMethod,
        pay: Callable[[KeyedCall, MethodToCharge | RemitError], Awaitable[Done[T] | Replay]],
        paid_with: Callable[[T | RemitError], str | None],
    ) -> Done[T] | Replay:
        """`pay` (a payment under `call`'s key) with the new payment method made of the card
        it is given (Stripe's `payment_method_data`), which `save_named_in` writes in pay's
        transaction, so a refused request or a replay makes none. The card is resolved here,
        before pay claims the key, and a refusal is handed to pay to raise once the key is
        found fresh: a retry still replays its key's answer.

        A vault token is a card the facade has just stored for this request: the key knows
        the card by its fingerprint and expiry instead (a retry brings a new vault token, as in
        `create_once`). Unless the outcome was paid, or declined, with this payment method
        (`paid_with`), the card is offered for deletion: after a replay, a refusal, or a retry
        that finished the payment an earlier request had started. What keeps a card that a
        stored attempt uses (the network unreachable after the attempt committed, or a stalled
        request whose payment a retry finished) is `delete_unused_card`'s check that no
        payment method holds it, made after the outcome: that check, not the outcome, is the
        guarantee."""
        if new.vault_token is None:
            return await pay(call, await self._to_charge_new_or_refusal(account_id, new))
        card = await self._vault.card_details(account_id, new.vault_token)
        named = MethodToCharge(self._new_method(account_id, card, new), is_new=True)
        return await self._handed_over(
            account_id,
            new.vault_token,
            lambda: self._call_by_recorded_card(
                account_id, call, card, lambda by_card: pay(by_card, named)
            ),
            keeps_card=lambda outcome: paid_with(outcome) == named.method.id,
        )

    async def _to_charge_new_or_refusal(
        self, account_id: str, new: NewPaymentMethod
    ) -> MethodToCharge | RemitError:
        """`_to_charge_new`, its refusal returned, not raised (see `pay_with_new_method`)."""
        try:
            return await self._to_charge_new(account_id, new)
        except RemitError as refused:
            return refused

    async def _to_charge_new(self, account_id: str, new: NewPaymentMethod) -> MethodToCharge:
        """The new payment method of a tok_ (a test token such as tok_visa, or one the account
        made); writes nothing, spends nothing. A missing or spent token is refused."""
        token_id = new.token_id
        if token_id is None:
            raise invalid("Give the card as payment_method_data[card][token].", _DATA_TOKEN_PARAM)
        if is_test_id(token_id):
            card = await self._vault.resolve_test_card(account_id, token_id)
            made = self._new_method(account_id, card, new, test_id=token_id)
            return MethodToCharge(made, is_new=True)
        async with self._engine.begin() as db:
            found = await SqlPaymentMethodRepository(db).get_token(account_id, token_id)
        token = _unspent(found, token_id, _DATA_TOKEN_PARAM)
        billing = merge_billing_details(billing_from_token(token), new.billing_details)
        made = self._new_method(
            account_id,
            VaultCard(token.vault_token, token.card, token.test_id),
            replace(new, billing_details=billing),
        )
        return MethodToCharge(made, is_new=True, spends_token=token_id)

    async def _materialize_test_id(self, account_id: str, test_id: str) -> PaymentMethod:
        card = await self._vault.resolve_test_card(account_id, test_id)
        return await self._insert(account_id, card, NewPaymentMethod(), test_id=test_id)

    # --- reading -----------------------------------------------------------------------

    async def get(self, account_id: str, method_id: str) -> PaymentMethod:
        """A payment method; a test id gives a fresh payment method of its test card, as
        Stripe's does (a real object with an id of its own, which later calls can name)."""
        if is_test_payment_method_id(method_id):
            return await self._materialize_test_id(account_id, method_id)
        async with single_statement(self._engine) as connection:
            method = await SqlPaymentMethodRepository(connection).get(account_id, method_id)
        if method is None:
            raise not_found("payment_method", method_id, param="payment_method")
        return method

    async def resolve_for_use(self, account_id: str, method_id: str) -> PaymentMethod:
        """The payment method to pay or attach with; detached ones are refused."""
        method = await self.get(account_id, method_id)
        if not method.usable:
            raise _unusable(method.id)
        return method

    def card_refused(self, account_id: str, vault_token: str) -> None:
        """The vault would not open the card behind `vault_token` for a charge (deleted, or
        sealed under a retired key): a test id must not be resolved to it again."""
        self._vault.forget_card(account_id, vault_token)

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        customer_id: str | None = None,
        allow_redisplay: str | None = None,
    ) -> tuple[list[PaymentMethod], bool]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("limit must be between 1 and 100.", "limit")
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            repo = SqlPaymentMethodRepository(db)
            if customer_id is not None and (
                await SqlCustomerRepository(db).get(account_id, customer_id) is None
            ):
                raise not_found("customer", customer_id, param="customer")

            async def cursor(method_id: str | None, param: str) -> tuple[datetime, str] | None:
                if method_id is None:
                    return None
                anchor = await repo.get(account_id, method_id)
                if anchor is None:
                    raise not_found("payment_method", method_id, param=param)
                return anchor.created_at, anchor.id

            return await repo.list(
                account_id,
                limit=limit,
                starting_after=await cursor(starting_after, "starting_after"),
                ending_before=await cursor(ending_before, "ending_before"),
                customer_id=customer_id,
                allow_redisplay=allow_redisplay,
            )

    # --- changing ----------------------------------------------------------------------

    async def update(
        self, account_id: str, method_id: str, changes: PaymentMethodChanges
    ) -> PaymentMethod:
        return value_of(await self.update_once(account_id, None, method_id, changes))

    async def update_once(
        self,
        account_id: str,
        keyed: Keyed[PaymentMethod] | None,
        method_id: str,
        changes: PaymentMethodChanges,
    ) -> Done[PaymentMethod] | Replay:
        now = self._clock.now()

        async def change(db: AsyncConnection) -> PaymentMethod:
            repo = SqlPaymentMethodRepository(db)
            holders: Sequence[PaymentMethod] = ()
            if _names_card_details(changes):
                # Every payment method holding the card is locked, in one order: an update of
                # its details is theirs too (`_card_details_sent`).
                found = await repo.get(account_id, method_id)
                if found is not None:
                    holders = await repo.lock_vault_card_holders(account_id, found.vault_token)
                method = next((held for held in holders if held.id == method_id), None)
            else:
                method = await repo.get(account_id, method_id, for_update=True)
            if method is None:
                raise not_found("payment_method", method_id)
            if method.customer_id is None:
                raise _unexpected_state(
                    "You must save this PaymentMethod to a customer before you can update it."
                )
            card = method.card
            if changes.exp_month is not None or changes.exp_year is not None:
                month = changes.exp_month if changes.exp_month is not None else card.exp_month
                year = changes.exp_year if changes.exp_year is not None else card.exp_year
                _check_expiry(month, year, now)
                card = replace(card, exp_month=month, exp_year=year)
            updated = replace(
                method,
                card=card,
                billing_details=merge_billing_details(
                    method.billing_details, changes.billing_details or {}
                ),
                metadata=updated_metadata(
                    method.metadata,
                    clear=changes.clear_metadata,
                    unset=changes.unset_metadata_keys,
                    values=changes.metadata,
                ),
                allow_redisplay=changes.allow_redisplay or method.allow_redisplay,
            )
            copies: list[tuple[PaymentMethod, PaymentMethod]] = []
            # Before the change commits, and with the payment method's row held: a refusal
            # leaves the payment method as it was, and concurrent updates reach the vault in
            # the order they commit here, so the two never end up holding other values. If
            # this commit fails after the vault's, the retry sends the same values, which the
            # vault takes as done.
            if _names_card_details(changes) and await self._send_card_details(method, updated):
                copies = _card_details_sent(holders, method, updated)
            await repo.save(updated)
            await self.hooks.payment_method_changed(db, method, updated)
            for before, after in copies:
                await repo.save(after)
                await self.hooks.payment_method_changed(db, before, after)
            return updated

        return await run_keyed(self._engine, keyed, now, change)

    async def _send_card_details(self, method: PaymentMethod, updated: PaymentMethod) -> bool:
        """Give the vault the card's expiry and billing details as the update leaves them
        (`updated`): a payment sends the vault's, to the network (the acquirer declines an
        expired card; its address checks read the billing address). False if the vault keeps
        the card's details as they were: a test id's card.

        Copies of the payment method (`payment_method=` on a create) hold the same vault card,
        and so share the vault's details: an update of one is sent all the same, and is seen
        by all of them, as the physical card is one (a reissued card's new expiry is every
        copy's, or every payment of the others would be declined as expired)."""
        # Both, whole, whatever the update names: the vault's may differ from the core's after
        # an update whose reply was lost (the vault took it, the core rolled back and told the
        # merchant it failed), and the next update that names either brings the two together
        # again. The vault takes values it holds already as done.
        expiry = (updated.card.exp_month, updated.card.exp_year)
        billing = updated.billing_details
        try:
            await self._vault.update_card_details(
                method.account_id, method.vault_token, expiry=expiry, billing_details=billing
            )
        except RemitError as error:
            if error.code == TEST_CARD_SHARED:
                # A test id's card, shared with every payment method made of the test id:
                # the change stays this payment method's, as before the vault kept details.
                log.debug("payment method %s has a test id's card: kept in the core", method.id)
                return False
            raise _card_details_not_stored(method, error) from None
        return True

    async def attach(self, account_id: str, method_id: str, customer_id: str) -> PaymentMethod:
        return value_of(await self.attach_once(account_id, None, method_id, customer_id))

    async def attach_once(
        self,
        account_id: str,
        keyed: Keyed[PaymentMethod] | None,
        method_id: str,
        customer_id: str,
    ) -> Done[PaymentMethod] | Replay:
        named = await self.to_attach(account_id, method_id)
        return await run_keyed(
            self._engine,
            keyed,
            self._clock.now(),
            lambda db: self.attach_named_in(db, account_id, named, customer_id),
        )

    async def detach(self, account_id: str, method_id: str) -> PaymentMethod:
        return value_of(await self.detach_once(account_id, None, method_id))

    async def detach_once(
        self, account_id: str, keyed: Keyed[PaymentMethod] | None, method_id: str
    ) -> Done[PaymentMethod] | Replay:
        async def take_off(db: AsyncConnection) -> PaymentMethod:
            repo = SqlPaymentMethodRepository(db)
            owner = await _lock_owner(db, account_id, method_id)
            method = await repo.get(account_id, method_id, for_update=True)
            if method is None:
                raise not_found("payment_method", method_id)
            if method.customer_id is None:
                raise _unexpected_state(
                    "The payment method you provided is not attached to a customer so "
                    "detachment is impossible."
                )
            if owner is None or method.customer_id != owner.id:
                # Attached (again, or elsewhere) since its owner was looked up: that owner is
                # not locked, and locking it now would take the locks out of order. A 409 the
                # client retries (stripe-python does) finds it settled.
                raise RemitError(
                    message=f"The payment method {method_id} was attached to a customer while "
                    "it was being detached; retry the request.",
                    kind=ErrorKind.CONFLICT,
                    code="payment_method_unexpected_state",
                )
            detached = method.detached(self._clock.now())
            await repo.save(detached)
            await self.hooks.payment_method_changed(db, method, detached)
            await forget_default_method_in(db, owner, method_id, self._customer_hooks)
            return detached

        return await run_keyed(self._engine, keyed, self._clock.now(), take_off)

    async def detach_a_batch_of_deleted_in(self, db: AsyncConnection, customer: Customer) -> bool:
        """Detach up to `DETACH_BATCH` payment methods of `customer`, oldest first, which the
        caller's transaction is deleting and holds locked (Stripe detaches a deleted customer's
        payment methods: they can never be used again); whether none is left attached.

        Each is detached as `detach` detaches one, and its hook records the same
        payment_method.detached event, so a merchant keeping saved cards from webhooks drops
        them all. The customer's default payment method is left as it is, with no
        customer.updated: customer.deleted shows the customer as it was when deleted.

        Two statements a batch (lock, detach), and the batch's events, held in a
        `fastsql.deferring` block, go out together in one round trip. The caller commits each
        batch on its own, so a customer with many cards is deleted in bounded transactions, and
        a delete cut short (a caller's deadline) has kept what it did for the retry. So the
        default payment method is detached only with the last batch, in the transaction that
        deletes the customer: a delete cut short leaves a live customer whose default is still
        attached to it. The batch is locked in the (created_at, id) order every holder of a
        card is locked in, the default among them, whether or not it is detached now."""
        repo = SqlPaymentMethodRepository(db)
        now = self._clock.now()
        async with fastsql.deferring(db):
            # One more than a batch: whether this is the last batch, and the default's lock in
            # its place when it is among them.
            locked = await repo.lock_attached_to(
                customer.account_id, customer.id, limit=DETACH_BATCH + 1
            )
            last = len(locked) <= DETACH_BATCH
            batch = (
                locked
                if last
                else [m for m in locked if m.id != customer.default_payment_method_id][
                    :DETACH_BATCH
                ]
            )
            detached = [method.detached(now) for method in batch]
            if detached:
                await repo.save_detached(detached, now)
            for before, after in zip(batch, detached, strict=True):
                await self.hooks.payment_method_changed(db, before, after)
        return last

    # --- tokens ------------------------------------------------------------------------

    async def create_token(
        self,
        account_id: str,
        vault_token: str,
        *,
        name: str | None = None,
        address: dict[str, str] | None = None,
        client_ip: str | None = None,
    ) -> Token:
        return value_of(
            await self.create_token_once(
                account_id, None, vault_token, name=name, address=address, client_ip=client_ip
            )
        )

    async def create_token_once(
        self,
        account_id: str,
        keyed: Keyed[Token] | None,
        vault_token: str,
        *,
        name: str | None = None,
        address: dict[str, str] | None = None,
        client_ip: str | None = None,
    ) -> Done[Token] | Replay:
        """A card token; under a client key, identified by the card like `create_once`. It has
        no metadata, as Stripe's has none."""
        card = await self._vault.card_details(account_id, vault_token)

        async def create() -> Done[Token] | Replay:
            # Checked here, so that a refusal deletes the card stored for the request.
            ip = None if client_ip is None else client_ip_address(client_ip)
            token = self._new_token(
                account_id, card, name=name, address=address or {}, client_ip=ip
            )

            async def insert(db: AsyncConnection) -> Token:
                await SqlPaymentMethodRepository(db).insert_token(token)
                return token

            return await self._by_recorded_card(
                account_id,
                keyed,
                card,
                lambda by_card: run_keyed(self._engine, by_card, self._clock.now(), insert),
            )

        return await self._handed_over(account_id, vault_token, create)

    async def _by_recorded_card(
        self,
        account_id: str,
        keyed: Keyed[T] | None,
        card: VaultCard,
        attempt: Callable[[Keyed[T] | None], Awaitable[R]],
    ) -> R:
        """`attempt` under `keyed` identified by its card (`_call_by_recorded_card`)."""
        if keyed is None:
            return await attempt(None)
        return await self._call_by_recorded_card(
            account_id, keyed.call, card, lambda call: attempt(replace(keyed, call=call))
        )

    async def _call_by_recorded_card(
        self,
        account_id: str,
        call: KeyedCall,
        card: VaultCard,
        attempt: Callable[[KeyedCall], Awaitable[R]],
    ) -> R:
        """`attempt` under `call` identified by its card (`_call_by_card`), or, if its key was
        recorded with the card's fingerprint every account shared, as recorded. A key recorded
        before the vault gave the card its account's own fingerprint (vault migration 0010)
        knows it by the shared one, and the card stored anew for the retry has the account's:
        the same request would be refused as another. On that refusal the recorded fingerprint
        is read back, and if the vault says it is this card's shared one (never telling it),
        the call goes as the key recorded it. Only then: a retry costs nothing more."""
        try:
            return await attempt(_call_by_card(call, card))
        except IdempotencyMismatchError:
            recorded = await self._recorded_shared_fingerprint(account_id, call, card)
            if recorded is None:
                raise
        return await attempt(_call_by_card(call, card, fingerprint=recorded))

    async def _recorded_shared_fingerprint(
        self, account_id: str, call: KeyedCall, card: VaultCard
    ) -> str | None:
        """The fingerprint `call`'s key recorded its card by, if the key recorded this very
        request with the card's shared fingerprint in place of its account's."""
        if self._fingerprint_checks is None:
            return None
        async with self._engine.begin() as db:
            record = await idempotency.find(db, call.account_id, call.key)
        if record is None or record.endpoint != call.endpoint:
            return None
        recorded = _card_fingerprint_of(record.request_body, call.request_body, card)
        if recorded is None or recorded == card.card.fingerprint:
            return None
        checked = await self._fingerprint_checks.check_fingerprints(
            account_id, [(card.vault_token, recorded)]
        )
        return recorded if [c.check for c in checked] == ["replaced"] else None

    def _new_token(
        self, account_id: str, card: VaultCard, *, name: str | None, address: dict[str, str],
        client_ip: str | None, test_id: str | None = None,
    ) -> Token:  # fmt: skip
        return Token(
            id=new_id("tok"),
            account_id=account_id,
            card_id=new_id("card"),
            vault_token=card.vault_token,
            card=card.card,
            created_at=self._clock.now(),
            name=name,
            address=address,
            client_ip=client_ip,
            test_id=test_id or card.test_id,
        )

    async def get_token(self, account_id: str, token_id: str) -> Token:
        if is_test_id(token_id) and has_prefix(token_id, "tok"):
            card = await self._vault.resolve_test_card(account_id, token_id)
            token = self._new_token(
                account_id, card, name=None, address={}, client_ip=None, test_id=token_id
            )
            async with self._engine.begin() as db:
                await SqlPaymentMethodRepository(db).insert_token(token)
            return token
        async with self._engine.begin() as db:
            found = await SqlPaymentMethodRepository(db).get_token(account_id, token_id)
        if found is None:
            raise not_found("token", token_id)
        return found


def _call_by_card(call: KeyedCall, card: VaultCard, *, fingerprint: str | None = None) -> KeyedCall:
    """The call identified by its card: fingerprint (the card's, unless another is given) and
    expiry stand in for the vault token, which is new each time the facade tokenizes the same
    card."""
    return replace(call, request_body=call.request_body + _card_identity(card, fingerprint))


def _card_identity(card: VaultCard, fingerprint: str | None) -> bytes:
    summary = card.card
    named = summary.fingerprint if fingerprint is None else fingerprint
    return f"\x00card {named} {summary.exp_month}/{summary.exp_year}".encode()


_RECORDED_FINGERPRINT: Final = re.compile(rb"\x00card ([0-9A-Za-z]+) ")


def _card_fingerprint_of(recorded: bytes, request_body: bytes, card: VaultCard) -> str | None:
    """The fingerprint a key's recorded request body names its card by, if it is this call's
    request (`request_body`) with `card`'s expiry: only the fingerprint may differ."""
    if not recorded.startswith(request_body):
        return None
    identity = recorded[len(request_body) :]
    found = _RECORDED_FINGERPRINT.match(identity)
    if found is None:
        return None
    fingerprint = found.group(1).decode()
    return fingerprint if identity == _card_identity(card, fingerprint) else None


def _copyable(source: PaymentMethod) -> PaymentMethod:
    """A payment method a new one may be made of (`payment_method=` on a create). A copy is a
    new payment method attached to no one and spent on nothing: made of a customer's saved card
    or of one an intent has used, it would escape what keeps that card to its customer and to
    its one intent. Stripe clones only for Connect, and only into a customer; remit refuses."""
    if source.customer_id is not None:
        raise _not_copyable(
            f"The PaymentMethod {source.id} is attached to a customer: it cannot be copied "
            "into a new PaymentMethod."
        )
    if source.spent_by_intent_id is not None:
        raise _not_copyable(
            f"The PaymentMethod {source.id} was used by a PaymentIntent: it cannot be copied "
            "into a new PaymentMethod."
        )
    return source


def _not_copyable(message: str) -> PaymentMethodsError:
    """A refusal by the source's state (a customer's, or spent): FAILED_PRECONDITION, with
    Stripe's parameter_invalid 400 on the REST API."""
    return PaymentMethodsError(
        message=message,
        kind=ErrorKind.FAILED_PRECONDITION,
        code="parameter_invalid",
        param="payment_method",
    )


def _unspent(token: Token | None, token_id: str, param: str) -> Token:
    """The token a new payment method is made of: it must exist and not have been used."""
    if token is None:
        raise not_found("token", token_id, param=param)
    if token.used:
        # The token's state, not the request's parameters: FAILED_PRECONDITION, which a call
        # under an idempotency key stores and replays (`payments.keyed`).
        raise PaymentMethodsError(
            message=f"You cannot use a Stripe token more than once: {token_id}.",
            kind=ErrorKind.FAILED_PRECONDITION,
            code="token_already_used",
            param=param,
        )
    return token


async def attach_in(
    db: AsyncConnection,
    account_id: str,
    method_id: str,
    customer_id: str,
    *,
    hooks: PaymentMethodHooks,
) -> PaymentMethod:
    """Attach inside the caller's transaction (customer creation attaches this way too)."""
    found = await _lock_for_attaching(db, account_id, method_id, customer_id)
    if isinstance(found, RemitError):
        raise found
    return await _attached(db, found, customer_id, hooks)


async def save_for_future_usage_in(
    db: AsyncConnection,
    account_id: str,
    method_id: str,
    customer_id: str,
    *,
    hooks: PaymentMethodHooks,
    paid_intent_id: str,
) -> PaymentMethod | None:
    """Attach the payment method a payment has just been made with to the payment's customer
    (Stripe's `setup_future_usage`), inside the transaction of the payment's outcome.

    The payment stands whatever happens here: what would refuse an explicit attach (the
    customer deleted, or the method detached or saved to another customer since the
    confirmation checked it) leaves the method as it is (None) instead of failing the outcome,
    which the network has already given. The refusal is returned, not raised and caught, so
    that an error of the caller's own writes, which travel with these reads, is never taken
    for one. The payment method was spent by this payment (`paid_intent_id`) if it was attached
    to no customer: saving it is what lets the customer use it again."""
    found = await _lock_for_attaching(
        db, account_id, method_id, customer_id, paying_intent_id=paid_intent_id
    )
    if isinstance(found, RemitError):
        return None
    return await _attached(db, found, customer_id, hooks)


async def record_future_usage_setup_in(
    db: AsyncConnection,
    account_id: str,
    method_id: str,
    *,
    saved_by_intent_id: str | None,
    off_session_setup_transaction_id: str | None,
) -> None:
    """Record, in the transaction of the outcome of a payment with setup_future_usage that went
    through, what it set up on its payment method, in one statement:

    - `saved_by_intent_id`: the payment's intent, which has no customer to save the method to.
      If that intent spent the method (used it attached to no customer), the method may still
      be attached to a customer afterwards, as Stripe allows; it pays no other intent until then.
    - `off_session_setup_transaction_id`: the network transaction id of the payment in which
      the cardholder agreed to off-session payments with the card: its later off-session
      payments cite it. Whether or not the payment saved the method to a customer (it may be
      attached afterwards): the agreement is the card's."""
    await SqlPaymentMethodRepository(db).record_future_usage_setup(
        account_id,
        method_id,
        saved_by_intent_id=saved_by_intent_id,
        off_session_setup_transaction_id=off_session_setup_transaction_id,
    )


async def _lock_owner(db: AsyncConnection, account_id: str, method_id: str) -> Customer | None:
    """The customer a payment method is attached to, locked before the payment method: the
    order in which attaching and deleting a customer lock them too (the other order could
    deadlock against those)."""
    method = await SqlPaymentMethodRepository(db).get(account_id, method_id)
    if method is None or method.customer_id is None:
        return None
    return await SqlCustomerRepository(db).get(account_id, method.customer_id, for_update=True)


async def _lock_for_attaching(
    db: AsyncConnection,
    account_id: str,
    method_id: str,
    customer_id: str,
    *,
    paying_intent_id: str | None = None,
) -> PaymentMethod | RemitError:
    """The payment method, locked with its customer, or the error that refuses attaching it.
    One spent on an intent without a customer is refused, unless it is that intent's payment
    saving it (`paying_intent_id`), or that payment went through with setup_future_usage
    (`PaymentMethod.saved_for_future_usage`: read under the lock, so an attach waiting for that
    payment's outcome sees it)."""
    if await SqlCustomerRepository(db).get(account_id, customer_id, for_update=True) is None:
        return not_found("customer", customer_id, param="customer")
    method = await SqlPaymentMethodRepository(db).get(account_id, method_id, for_update=True)
    if method is None:
        return not_found("payment_method", method_id, param="payment_method")
    if not method.usable:
        return _unusable(method_id)
    if method.spent_for(paying_intent_id):
        return spent_payment_method()
    if method.customer_id is not None and method.customer_id != customer_id:
        return _unexpected_state(
            "The payment method you provided has already been attached to a customer.",
            "payment_method",
        )
    return method


async def _attached(
    db: AsyncConnection, method: PaymentMethod, customer_id: str, hooks: PaymentMethodHooks
) -> PaymentMethod:
    if method.customer_id == customer_id:
        return method
    attached = replace(method, customer_id=customer_id)
    await SqlPaymentMethodRepository(db).save(attached)
    await hooks.payment_method_changed(db, method, attached)
    return attached


def _names_card_details(changes: PaymentMethodChanges) -> bool:
    """Whether the update names what the vault sends with the card: its expiry or billing
    details."""
    return (
        changes.exp_month is not None
        or changes.exp_year is not None
        or changes.billing_details is not None
    )


def _card_details_sent(
    holders: Sequence[PaymentMethod], method: PaymentMethod, updated: PaymentMethod
) -> list[tuple[PaymentMethod, PaymentMethod]]:
    """The other payment methods holding `method`'s vault card, before and after the details
    the vault took for it (`updated`'s): they send the vault's with every payment, so they
    show them too. Those already showing them are left out."""
    changed = []
    for held in holders:
        if held.id == method.id:
            continue
        card = replace(held.card, exp_month=updated.card.exp_month, exp_year=updated.card.exp_year)
        after = replace(held, card=card, billing_details=updated.billing_details)
        if after != held:
            changed.append((held, after))
    return changed


def _card_details_not_stored(method: PaymentMethod, error: RemitError) -> RemitError:
    """The vault's refusal of a card's new details, as the update's: nothing was changed. A
    card the vault no longer holds (deleted through its admin API) leaves the payment method
    in a state no update can fix; values the vault refuses are named as the merchant sent
    them (`_merchant_param`); any other failure is the vault's, under its kind, code and
    advice to retry (a retryable one is not stored on the idempotency key, `run_keyed`).

    The vault's message names its token, the vault's own handle on the card, which is no
    merchant's: only a refusal of a value keeps it (what was wrong with the value), with the
    token put as the payment method's id should one be in it."""
    message = (
        f"The new card details of {method.id} could not be stored with its card in the "
        "vault, so the PaymentMethod was not changed."
    )
    if error.kind is ErrorKind.NOT_FOUND:
        return RemitError(
            message=message,
            kind=ErrorKind.FAILED_PRECONDITION,
            code="payment_method_unexpected_state",
        )
    if error.kind is ErrorKind.INVALID_ARGUMENT:
        told = error.message.replace(method.vault_token, method.id)
        return RemitError(
            message=f"{message} {told}",
            kind=error.kind,
            error_type=error.error_type,
            code=error.code,
            param=_merchant_param(error.param),
        )
    return RemitError(
        message=message,
        kind=error.kind,
        error_type=error.error_type,
        code=error.code,
        should_retry=error.should_retry,
    )


def _merchant_param(vault_param: str | None) -> str | None:
    """The update's parameter a vault's parameter stands for: `exp_month` is
    `card[exp_month]`, `billing_details.address.line1` is `billing_details[address][line1]`;
    one the merchant did not send (the vault token) is none."""
    if vault_param in ("exp_month", "exp_year"):
        return f"card[{vault_param}]"
    if vault_param is None or not vault_param.startswith("billing_details"):
        return None
    head, *rest = vault_param.split(".")
    return head + "".join(f"[{part}]" for part in rest)


def _check_expiry(month: int, year: int, now: datetime) -> None:
    if not 1 <= month <= 12:
        raise invalid(
            "Your card's expiration month is invalid.", "card[exp_month]",
            code="invalid_expiry_month",
        )  # fmt: skip
    if not now.year <= year <= now.year + _MAX_EXPIRY_YEARS_AHEAD:
        raise invalid(
            "Your card's expiration year is invalid.", "card[exp_year]",
            code="invalid_expiry_year",
        )  # fmt: skip
    if year == now.year and month < now.month:
        raise invalid(
            "Your card's expiration month is invalid.", "card[exp_month]",
            code="invalid_expiry_month",
        )  # fmt: skip
