"""Reading and writing accounts and keys inside the caller's transaction."""

from datetime import datetime
from enum import Enum
from typing import Final, Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.accounts.domain import Account, ApiKey, KeyKind, Pricing, Principal
from remit.accounts.key_events import KeyEvent, KeyEventAction
from remit.accounts.tables import accounts, api_key_events, api_keys
from remit.storage.keyset import fetch_page


class Revoked(Enum):
    """A key that was issued and revoked since."""

    REVOKED = "revoked"


REVOKED: Final = Revoked.REVOKED


class AccountRepository(Protocol):
    async def insert_account(self, account: Account) -> None: ...
    async def get_account(self, account_id: str, *, for_update: bool = False) -> Account | None: ...
    async def save_account(self, account: Account) -> None: ...
    async def insert_key(self, key: ApiKey, digest: bytes) -> None: ...
    async def list_keys(self, account_id: str) -> list[ApiKey]: ...
    async def revoke_key(self, account_id: str, key_id: str, at: datetime) -> bool: ...
    async def key_for_update(self, account_id: str, key_id: str) -> ApiKey | None: ...
    async def insert_key_event(self, event: KeyEvent) -> None: ...
    async def principal_for_digest(
        self, digest: bytes, now: datetime
    ) -> Principal | Revoked | None: ...
    async def working_key_digests(self, now: datetime, limit: int) -> list[bytes]: ...


def _account_from_row(row: Row[tuple[object, ...]]) -> Account:
    m = row._mapping
    return Account(
        id=m["id"],
        created_at=m["created_at"],
        default_currency=m["default_currency"],
        raw_card_access=m["raw_card_access"],
        api_version=m["api_version"],
        pricing=Pricing(fee_percent_bps=m["fee_percent_bps"], fee_fixed_minor=m["fee_fixed_minor"]),
        available_delay_days=m["available_delay_days"],
        automatic_payouts=m["automatic_payouts"],
        radar_enabled=m["radar_enabled"],
    )


def _key_from_row(row: Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        account_id=m["account_id"],
        kind=KeyKind(m["kind"]),
        last4=m["last4"],
        livemode=m["livemode"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
    )


def _event_from_row(row: Row[tuple[object, ...]]) -> KeyEvent:
    m = row._mapping
    return KeyEvent(
        id=m["id"],
        created_at=m["created_at"],
        account_id=m["account_id"],
        key_id=m["key_id"],
        action=KeyEventAction(m["action"]),
        kind=KeyKind(m["kind"]),
        livemode=m["livemode"],
        masked_key=m["masked_key"],
        role=m["role"],
        operator=m["operator"],
        reason=m["reason"],
        stops_at=m["stops_at"],
        stops_at_before=m["stops_at_before"],
        replaced_by=m["replaced_by"],
    )


def account_values(account: Account) -> dict[str, object]:
    """The account's stored settings, by column: everything a CreateAccount call decides of it."""
    return {
        "default_currency": account.default_currency,
        "raw_card_access": account.raw_card_access,
        "api_version": account.api_version,
        "fee_percent_bps": account.pricing.fee_percent_bps,
        "fee_fixed_minor": account.pricing.fee_fixed_minor,
        "available_delay_days": account.available_delay_days,
        "automatic_payouts": account.automatic_payouts,
        "radar_enabled": account.radar_enabled,
    }


class SqlAccountRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def insert_account(self, account: Account) -> None:
        await self._db.execute(
            accounts.insert().values(
                id=account.id, created_at=account.created_at, **account_values(account)
            )
        )

    async def get_account(self, account_id: str, *, for_update: bool = False) -> Account | None:
        query = select(accounts).where(accounts.c.id == account_id)
        if for_update:
            # FOR NO KEY UPDATE: a settings change never changes the id, so the key-share
            # locks that inserts referencing the account take (its ledger postings, its
            # customers) need not wait for it.
            query = query.with_for_update(key_share=True)
        row = (await self._db.execute(query)).first()
        return None if row is None else _account_from_row(row)

    async def save_account(self, account: Account) -> None:
        await self._db.execute(
            update(accounts).where(accounts.c.id == account.id).values(**account_values(account))
        )

    async def insert_key(self, key: ApiKey, digest: bytes) -> None:
        await self._db.execute(
            api_keys.insert().values(
                id=key.id,
                account_id=key.account_id,
                kind=key.kind.value,
                key_digest=digest,
                last4=key.last4,
                livemode=key.livemode,
                created_at=key.created_at,
                revoked_at=key.revoked_at,
            )
        )

    async def list_keys(self, account_id: str) -> list[ApiKey]:
        rows = await self._db.execute(
            select(api_keys)
            .where(api_keys.c.account_id == account_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        return [_key_from_row(row) for row in rows]

    async def revoke_key(self, account_id: str, key_id: str, at: datetime) -> bool:
        """Set the key to stop authenticating `at`; False when it is unknown or already stops
        by then (a stop is never pushed back)."""
        result = await self._db.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.account_id == account_id,
                or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > at),
            )
            .values(revoked_at=at)
        )
        return result.rowcount == 1

    async def key_for_update(self, account_id: str, key_id: str) -> ApiKey | None:
        """The key as it is, locked until the transaction ends: a change made at once by
        another call waits, and then reads what this one left (its event says the stop before
        it as it was)."""
        row = (
            await self._db.execute(
                select(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.account_id == account_id)
                .with_for_update(key_share=True)
            )
        ).first()
        return None if row is None else _key_from_row(row)

    async def insert_key_event(self, event: KeyEvent) -> None:
        await self._db.execute(
            api_key_events.insert().values(
                id=event.id,
                created_at=event.created_at,
                account_id=event.account_id,
                key_id=event.key_id,
                action=event.action.value,
                kind=event.kind.value,
                livemode=event.livemode,
                masked_key=event.masked_key,
                role=event.role,
                operator=event.operator,
                reason=event.reason,
                stops_at=event.stops_at,
                stops_at_before=event.stops_at_before,
                replaced_by=event.replaced_by,
            )
        )

    async def key_event_anchor(self, account_id: str, event_id: str) -> tuple[datetime, str] | None:
        """Where the event `event_id` of the account sits in the order of its events."""
        row = (
            await self._db.execute(
                select(api_key_events.c.created_at, api_key_events.c.id).where(
                    api_key_events.c.id == event_id, api_key_events.c.account_id == account_id
                )
            )
        ).first()
        return None if row is None else (row[0], row[1])

    async def page_key_events(
        self, account_id: str, *, limit: int, starting_after: tuple[datetime, str] | None
    ) -> tuple[list[KeyEvent], bool]:
        """One page of the account's key events, newest first, and whether older ones follow."""
        rows, has_more = await fetch_page(
            self._db,
            api_key_events,
            [api_key_events.c.account_id == account_id],
            limit=limit,
            starting_after=starting_after,
        )
        return [_event_from_row(row) for row in rows], has_more

    async def working_key_digests(self, now: datetime, limit: int) -> list[bytes]:
        """The digests of up to `limit` keys that work at `now`, the latest made first."""
        rows = await self._db.execute(
            select(api_keys.c.key_digest)
            .where(or_(api_keys.c.revoked_at.is_(None), api_keys.c.revoked_at > now))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id.desc())
            .limit(limit)
        )
        return [bytes(digest) for digest in rows.scalars()]

    async def principal_for_digest(
        self, digest: bytes, now: datetime
    ) -> Principal | Revoked | None:
        """Who a key's digest stands for at `now`; REVOKED for a key that stopped working by
        then (digests are unique, so one read tells the three cases apart), None for a key
        never issued."""
        row = (
            await self._db.execute(
                select(
                    api_keys.c.id,
                    api_keys.c.account_id,
                    api_keys.c.kind,
                    api_keys.c.livemode,
                    api_keys.c.revoked_at,
                    accounts.c.api_version,
                    accounts.c.raw_card_access,
                )
                .join(accounts, accounts.c.id == api_keys.c.account_id)
                .where(api_keys.c.key_digest == digest)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        if m["revoked_at"] is not None and m["revoked_at"] <= now:
            return REVOKED
        return Principal(
            account_id=m["account_id"],
            key_id=m["id"],
            key_kind=KeyKind(m["kind"]),
            livemode=m["livemode"],
            api_version=m["api_version"],
            raw_card_access=m["raw_card_access"],
        )
