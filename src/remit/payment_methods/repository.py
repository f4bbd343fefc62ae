"""PaymentMethod and Token persistence inside the caller's transaction."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import exists, func, select, text, union, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.payment_methods.domain import (
    UNSPECIFIED_REDISPLAY,
    CardSummary,
    PaymentMethod,
    Token,
)
from remit.payment_methods.tables import payment_methods, tokens, vault_sweep_watermarks
from remit.storage.fastsql import Db, Refusals, Statement, TableStatements, sqlalchemy_unit
from remit.storage.keyset import fetch_page

_PAYMENT_METHODS = TableStatements(payment_methods)

# What a saved payment method must still be, under its row lock, to pay an intent: the card was
# read before the attempt's transaction opened, and may have been detached (by a detach, or by
# its customer's deletion), saved to a customer, or spent on another intent since. The checks
# raise on the server (`remit_require`), so the statement goes out with the attempt's other
# writes instead of taking a round trip of its own; each SQLSTATE is one refusal.
METHOD_MISSING = "RMP04"
METHOD_DETACHED = "RMP10"
METHOD_OF_ANOTHER_CUSTOMER = "RMP11"  # raised with the id of the customer it is saved to
METHOD_SPENT_ELSEWHERE = "RMP12"


def _checked_for_payment(locked: str) -> Statement:
    """The checks, on the row `locked` reads (found, customer_id, spent_by_intent_id,
    detached_at) and locks. In order: CASE evaluates its branches one by one, so the first
    refusal that applies is the one raised."""
    return Statement(
        f"WITH method AS ({locked}) SELECT CASE"  # noqa: S608 (constant text)
        " WHEN method.found IS NULL THEN"
        f" remit_require(false, '{METHOD_MISSING}', 'no such payment method')"
        " WHEN method.detached_at IS NOT NULL THEN"
        f" remit_require(false, '{METHOD_DETACHED}', 'detached')"
        " WHEN method.customer_id IS DISTINCT FROM CAST(%(customer_id)s AS text)"
        " AND method.customer_id IS NOT NULL THEN"
        f" remit_require(false, '{METHOD_OF_ANOTHER_CUSTOMER}', method.customer_id)"
        " WHEN method.customer_id IS NULL AND method.spent_by_intent_id <> %(intent_id)s THEN"
        f" remit_require(false, '{METHOD_SPENT_ELSEWHERE}', 'spent on another intent')"
        " ELSE true END AS usable FROM (SELECT 1) AS one LEFT JOIN method ON true"
    )


_LOCKED_WHERE = "WHERE account_id = %(account_id)s AND id = %(id)s"
_LOCKED_COLUMNS = "true AS found, customer_id, spent_by_intent_id, detached_at"
# Spends the payment method on the intent if it is attached to no customer and not spent yet,
# then checks it as it is now: two intents confirmed with it at once cannot both take it (the
# row lock serializes them; the second sees the first's intent).
_SPEND_FOR_PAYMENT = _checked_for_payment(
    "UPDATE payment_methods SET spent_by_intent_id = CASE"  # noqa: S608 (constant text)
    " WHEN customer_id IS NULL AND spent_by_intent_id IS NULL THEN %(intent_id)s"
    f" ELSE spent_by_intent_id END {_LOCKED_WHERE} RETURNING {_LOCKED_COLUMNS}"
)
# Only checks it, under a share lock: a detach, an attach, a customer's deletion or a spend
# waits for the payment's commit (or the payment for theirs, and sees what they did), while
# payments with the same saved card do not wait for each other.
_CHECK_FOR_PAYMENT = _checked_for_payment(
    f"SELECT {_LOCKED_COLUMNS} FROM payment_methods {_LOCKED_WHERE} FOR SHARE"  # noqa: S608
)

# What a payment with setup_future_usage that went through records on its payment method, in
# one statement: the network transaction id of an off-session setup, if it has one (else the
# one recorded stays), and, if it is the intent that spent the method while attached to no
# customer, that the method may still be attached to one. Which intent spent it is checked
# here, under the row lock, so that the record never frees a method another intent spent.
_RECORD_FUTURE_USAGE_SETUP = Statement(
    "UPDATE payment_methods SET saved_for_future_usage ="  # noqa: S608 (constant text)
    " saved_for_future_usage OR COALESCE(customer_id IS NULL"
    " AND spent_by_intent_id = CAST(%(saved_by_intent_id)s AS text), false),"
    " off_session_setup_transaction_id = COALESCE("
    "CAST(%(off_session_setup_transaction_id)s AS text), off_session_setup_transaction_id)"
    f" {_LOCKED_WHERE}"
)


# `fingerprint_scope` (core migration 0088): as the vault gave it, which may be the fingerprint
# every account shared; or known to be the account's own, told by the vault with the card or
# checked with it by the conversion (`remit.payment_methods.fingerprint_conversion`).
AS_GIVEN_SCOPE: Final = 1
ACCOUNT_SCOPE: Final = 2


def _card_values(card: CardSummary) -> dict[str, object]:
    return {
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": card.funding,
        "country": card.country,
        # In the row's own insert: a card the vault gave with its account's fingerprint costs
        # the conversion nothing, and a payment with a new card no statement more.
        "fingerprint_scope": ACCOUNT_SCOPE if card.account_fingerprint else AS_GIVEN_SCOPE,
    }


def _card(m: Mapping[Any, Any]) -> CardSummary:
    return CardSummary(
        brand=m["brand"],
        last4=m["last4"],
        exp_month=m["exp_month"],
        exp_year=m["exp_year"],
        fingerprint=m["fingerprint"],
        funding=m["funding"],
        country=m["country"],
        account_fingerprint=m["fingerprint_scope"] == ACCOUNT_SCOPE,
    )


def _pm_from_row(row: Row[tuple[object, ...]]) -> PaymentMethod:
    return _pm_from_mapping(row._mapping)


def _pm_from_mapping(m: Mapping[Any, Any]) -> PaymentMethod:
    return PaymentMethod(
        id=m["id"],
        account_id=m["account_id"],
        vault_token=m["vault_token"],
        card=_card(m),
        created_at=m["created_at"],
        billing_details=m["billing_details"],
        metadata=m["metadata"],
        customer_id=m["customer_id"],
        allow_redisplay=m["allow_redisplay"],
        detached_at=m["detached_at"],
        test_id=m["test_id"],
        spent_by_intent_id=m["spent_by_intent_id"],
        saved_for_future_usage=m["saved_for_future_usage"],
        off_session_setup_transaction_id=m["off_session_setup_transaction_id"],
    )


def _token_from_row(row: Row[tuple[object, ...]]) -> Token:
    m = row._mapping
    return Token(
        id=m["id"],
        account_id=m["account_id"],
        card_id=m["card_id"],
        vault_token=m["vault_token"],
        card=_card(m),
        created_at=m["created_at"],
        name=m["name"],
        address=m["address"],
        client_ip=m["client_ip"],
        metadata=m["metadata"],
        used=m["used"],
        test_id=m["test_id"],
    )


@dataclass(frozen=True)
class HeldFingerprintRow:
    """A payment method's or token's card, by the fingerprint it holds, not yet known to be
    its account's own (`fingerprint_scope` 1)."""

    id: str
    account_id: str
    vault_token: str
    fingerprint: str


# The rows a conversion sets to the account's fingerprint (`checked`): each only if it still
# holds the fingerprint the vault was asked about and was not converted meanwhile.
_RECORD_CHECKED = """
UPDATE {table} AS t SET fingerprint = checked.fingerprint, fingerprint_scope = 2
FROM unnest(CAST(:ids AS text[]), CAST(:held AS text[]), CAST(:fingerprints AS text[]))
    AS checked(id, held, fingerprint)
WHERE t.account_id = :account_id AND t.id = checked.id AND t.fingerprint = checked.held
    AND t.fingerprint_scope = 1
"""

_FINGERPRINT_TABLES = {"payment_methods": payment_methods, "tokens": tokens}


class SqlPaymentMethodRepository:
    def __init__(self, connection: Db) -> None:
        self._db = connection

    @property
    def _sa(self) -> AsyncConnection:
        return sqlalchemy_unit(self._db)

    async def insert(self, method: PaymentMethod) -> None:
        # Every use of a test id (pm_card_visa, ...) inserts one: straight to the driver, and
        # deferred, so that in a payment's unit of work (`fastsql.deferring`) it travels with
        # the payment's own writes instead of taking a round trip of its own.
        row = {
            "id": method.id,
            "account_id": method.account_id,
            "vault_token": method.vault_token,
            "test_id": method.test_id,
            "created_at": method.created_at,
            "spent_by_intent_id": method.spent_by_intent_id,
            **_card_values(method.card),
            **self._mutable(method),
        }
        await _PAYMENT_METHODS.insert(list(row)).defer(self._db, row)

    @staticmethod
    def _mutable(method: PaymentMethod) -> dict[str, object]:
        return {
            "billing_details": dict(method.billing_details),
            "metadata": dict(method.metadata),
            "customer_id": method.customer_id,
            "allow_redisplay": method.allow_redisplay,
            "detached_at": method.detached_at,
            "exp_month": method.card.exp_month,
            "exp_year": method.card.exp_year,
        }

    async def get(
        self, account_id: str, method_id: str, *, for_update: bool = False
    ) -> PaymentMethod | None:
        # Read on every payment with a saved payment method: straight to the driver, on a
        # single-statement connection or in the caller's unit of work.
        statement = _PAYMENT_METHODS.select_for_update if for_update else _PAYMENT_METHODS.select
        row = await statement.first(self._db, {"account_id": account_id, "id": method_id})
        return None if row is None else _pm_from_mapping(row)

    async def use_for_payment(
        self,
        account_id: str,
        method_id: str,
        intent_id: str,
        *,
        customer_id: str | None,
        spend: bool,
        refusals: Refusals,
    ) -> None:
        """Lock the payment method and check it may still pay `intent_id`, whose customer is
        `customer_id`; with `spend`, spend it on that intent first if it is attached to no
        customer and not spent yet. A check that fails raises the error `refusals` makes for
        its SQLSTATE (`METHOD_...`), now or, inside `fastsql.deferring`, when the statement
        goes out with the unit's next one."""
        statement = _SPEND_FOR_PAYMENT if spend else _CHECK_FOR_PAYMENT
        await statement.defer(
            self._db,
            {
                "account_id": account_id,
                "id": method_id,
                "intent_id": intent_id,
                "customer_id": customer_id,
            },
            refusals,
        )

    async def record_future_usage_setup(
        self,
        account_id: str,
        method_id: str,
        *,
        saved_by_intent_id: str | None,
        off_session_setup_transaction_id: str | None,
    ) -> None:
        """Record what a payment with setup_future_usage that went through set up
        (`_RECORD_FUTURE_USAGE_SETUP`); deferred, in a payment's unit of work, like `insert`."""
        await _RECORD_FUTURE_USAGE_SETUP.defer(
            self._db,
            {
                "account_id": account_id,
                "id": method_id,
                "saved_by_intent_id": saved_by_intent_id,
                "off_session_setup_transaction_id": off_session_setup_transaction_id,
            },
        )

    async def get_many(
        self, account_id: str, method_ids: Collection[str]
    ) -> dict[str, PaymentMethod]:
        """The account's payment methods among `method_ids`, by id, in one query."""
        rows = await self._sa.execute(
            select(payment_methods).where(
                payment_methods.c.account_id == account_id,
                payment_methods.c.id.in_(list(method_ids)),
            )
        )
        return {row.id: _pm_from_row(row) for row in rows}

    async def save(self, method: PaymentMethod) -> None:
        await self._sa.execute(
            update(payment_methods)
            .where(
                payment_methods.c.account_id == method.account_id,
                payment_methods.c.id == method.id,
            )
            .values(**self._mutable(method))
        )

    async def lock_attached_to(
        self, account_id: str, customer_id: str, *, limit: int
    ) -> list[PaymentMethod]:
        """Up to `limit` of the payment methods attached to the customer, oldest first, locked
        (FOR UPDATE), in one statement."""
        rows = await self._sa.execute(
            select(payment_methods)
            .where(
                payment_methods.c.account_id == account_id,
                payment_methods.c.customer_id == customer_id,
            )
            .order_by(payment_methods.c.created_at, payment_methods.c.id)
            .limit(limit)
            .with_for_update()
        )
        return [_pm_from_row(row) for row in rows]

    async def save_detached(self, methods: Collection[PaymentMethod], now: datetime) -> None:
        """Write `methods`, each detached at `now` (`PaymentMethod.detached`), in one
        statement: a detach changes nothing else of them."""
        if not methods:
            return
        account_ids = {method.account_id for method in methods}
        if len(account_ids) != 1 or any(
            method.customer_id is not None or method.detached_at != now for method in methods
        ):
            raise ValueError("save_detached takes one account's methods, each detached at now")
        await self._sa.execute(
            update(payment_methods)
            .where(
                payment_methods.c.account_id == account_ids.pop(),
                payment_methods.c.id.in_([method.id for method in methods]),
            )
            .values(customer_id=None, detached_at=now)
        )

    async def list(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: tuple[datetime, str] | None,
        ending_before: tuple[datetime, str] | None,
        customer_id: str | None,
        allow_redisplay: str | None = None,
    ) -> tuple[list[PaymentMethod], bool]:
        c = payment_methods.c
        conditions = [c.account_id == account_id]
        if customer_id is not None:
            conditions.append(c.customer_id == customer_id)
        if allow_redisplay is not None:
            # A method stored without one (made before remit kept it) is `unspecified`,
            # Stripe's default.
            conditions.append(
                func.coalesce(c.allow_redisplay, UNSPECIFIED_REDISPLAY) == allow_redisplay
            )
        rows, has_more = await fetch_page(
            self._sa,
            payment_methods,
            conditions,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_pm_from_row(row) for row in rows], has_more

    async def lock_vault_card_holders(
        self, account_id: str, vault_token: str
    ) -> Sequence[PaymentMethod]:
        """The account's payment methods that hold the vault card (one, and the copies made of
        it with `payment_method=` on a create), locked (FOR UPDATE) oldest first, in the order
        `lock_attached_to` locks a deleted customer's: concurrent updates of any of them, and a
        deletion of a customer holding some of them, lock them in one order and never deadlock."""
        p = payment_methods.c
        rows = await self._sa.execute(
            select(payment_methods)
            .where(p.account_id == account_id, p.vault_token == vault_token)
            .order_by(p.created_at, p.id)
            .with_for_update()
        )
        return [_pm_from_row(row) for row in rows]

    async def vault_card_held(self, vault_token: str) -> bool:
        """Whether any payment method or token, of any account, holds the vault card."""
        return vault_token in await self.vault_cards_held([vault_token])

    async def vault_cards_held(self, vault_tokens: Collection[str]) -> set[str]:
        """Which of the vault cards any payment method or token, of any account, holds."""
        if not vault_tokens:
            return set()
        wanted = list(vault_tokens)
        query = union(
            select(payment_methods.c.vault_token).where(payment_methods.c.vault_token.in_(wanted)),
            select(tokens.c.vault_token).where(tokens.c.vault_token.in_(wanted)),
        )
        return {str(token) for token in (await self._sa.execute(query)).scalars()}

    async def holds_any_vault_card(self) -> bool:
        """Whether any payment method or token at all exists, of any account."""
        query = select(exists().select_from(payment_methods) | exists().select_from(tokens))
        return bool((await self._sa.execute(query)).scalar_one())

    async def fingerprints_to_convert(
        self, table: str, *, after: str | None, limit: int
    ) -> Sequence[HeldFingerprintRow]:
        """Up to `limit` rows of `table` ("payment_methods" or "tokens") whose fingerprint is
        not known to be their account's own, by id after `after` (through the partial index
        of those rows, core migration 0088)."""
        t = _FINGERPRINT_TABLES[table]
        query = (
            select(t.c.id, t.c.account_id, t.c.vault_token, t.c.fingerprint)
            .where(t.c.fingerprint_scope == 1)
            .order_by(t.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(t.c.id > after)
        rows = await self._sa.execute(query)
        return [
            HeldFingerprintRow(row.id, row.account_id, row.vault_token, row.fingerprint)
            for row in rows
        ]

    async def record_account_fingerprints(
        self, table: str, account_id: str, checked: Sequence[tuple[str, str, str]]
    ) -> int:
        """Set each (id, fingerprint held, account's fingerprint) row of `table` to its
        account's fingerprint, known to be so (`_RECORD_CHECKED`); how many changed."""
        if not checked:
            return 0
        result = await self._sa.execute(
            text(_RECORD_CHECKED.format(table=_FINGERPRINT_TABLES[table].name)),
            {
                "account_id": account_id,
                "ids": [row[0] for row in checked],
                "held": [row[1] for row in checked],
                "fingerprints": [row[2] for row in checked],
            },
        )
        return int(result.rowcount)

    async def vault_sweep_watermark(self, name: str) -> tuple[datetime, str] | None:
        """The (created_at, vault token) of the last card the named sweep finished with."""
        w = vault_sweep_watermarks.c
        query = select(w.card_created_at, w.vault_token).where(w.name == name)
        row = (await self._sa.execute(query)).first()
        return None if row is None else (row.card_created_at, row.vault_token)

    async def set_vault_sweep_watermark(
        self, name: str, card_created_at: datetime, vault_token: str
    ) -> None:
        values = {"card_created_at": card_created_at, "vault_token": vault_token}
        await self._sa.execute(
            insert(vault_sweep_watermarks)
            .values(name=name, **values)
            .on_conflict_do_update(index_elements=["name"], set_=values)
        )

    # --- tokens ------------------------------------------------------------------------

    async def insert_token(self, token: Token) -> None:
        await self._sa.execute(
            tokens.insert().values(
                id=token.id,
                account_id=token.account_id,
                card_id=token.card_id,
                vault_token=token.vault_token,
                name=token.name,
                address=dict(token.address),
                client_ip=token.client_ip,
                metadata=dict(token.metadata),
                used=token.used,
                test_id=token.test_id,
                created_at=token.created_at,
                **_card_values(token.card),
            )
        )

    async def get_token(
        self, account_id: str, token_id: str, *, for_update: bool = False
    ) -> Token | None:
        query = select(tokens).where(tokens.c.account_id == account_id, tokens.c.id == token_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._sa.execute(query)).first()
        return None if row is None else _token_from_row(row)

    async def mark_token_used(self, account_id: str, token_id: str) -> None:
        await self._sa.execute(
            update(tokens)
            .where(tokens.c.account_id == account_id, tokens.c.id == token_id)
            .values(used=True)
        )
