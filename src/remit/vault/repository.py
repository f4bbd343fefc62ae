"""Vault persistence inside the caller's transaction. Rows hold ciphertext, never plaintext."""

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, literal_column, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.storage.fastsql import Db, Statement, TableStatements, driver, sqlalchemy_unit
from remit.storage.keyset import fetch_page
from remit.vault.card_metadata import metadata_digest
from remit.vault.cards import Brand, Funding
from remit.vault.crypto import FingerprintScope, SealedCard, SealFormat
from remit.vault.domain import (
    AuditAction,
    AuditEvent,
    AuditFilter,
    CardSummary,
    ListedCard,
    LostKeyVersion,
    StoredCard,
)
from remit.vault.forward_replay import RecordedForward
from remit.vault.tables import (
    audit_events,
    cards,
    key_check_values,
    lost_key_versions,
    test_card_tokens,
)

# The statements of every forwarded authorization and test-card resolution are written out
# once and sent straight to the driver (remit.storage.fastsql): building and cache-keying a
# statement through SQLAlchemy Core costs more client CPU than running a prepared one. The
# column lists come from the tables' own metadata, never from a request.

# Plain lower-case names (tables.py), so they need no quoting.
_CARD_COLUMNS = ", ".join(f"c.{column.name}" for column in cards.columns)

_TEST_CARD = Statement(
    f"SELECT t.token AS test_card_token, {_CARD_COLUMNS} "  # noqa: S608
    "FROM test_card_tokens AS t LEFT OUTER JOIN cards AS c ON c.token = t.token "
    "WHERE t.account_id = %(account_id)s AND t.test_id = %(test_id)s"
)

# The answer recorded for a reference, with what it was recorded for (`RecordedForward`).
_RECORDED_FORWARD_COLUMNS = (
    "f.result AS recorded_result, f.token AS recorded_token, "
    "f.destination AS recorded_destination, f.request_digest AS recorded_digest"
)
_THE_REFERENCES_FORWARD = (
    "forwards AS f ON f.account_id = %(account_id)s AND f.reference = %(reference)s"
)

_FORWARDED_RESULT = Statement(
    f"SELECT {_RECORDED_FORWARD_COLUMNS} FROM forwards AS f "  # noqa: S608
    "WHERE f.account_id = %(account_id)s AND f.reference = %(reference)s"
)

# The answer already recorded for the reference, and the card; one row even if neither exists
# (each is found by its primary key, so at most one of each joins).
_FORWARD_START = Statement(
    f"SELECT {_RECORDED_FORWARD_COLUMNS}, {_CARD_COLUMNS} "  # noqa: S608
    f"FROM (SELECT 1) AS one_row LEFT OUTER JOIN {_THE_REFERENCES_FORWARD} "
    "LEFT OUTER JOIN cards AS c ON c.token = %(token)s"
)

# Records the answer, with the digest of what it answers, unless one is recorded for the
# reference. Data-modifying CTEs run to completion whether or not the outer query reads them;
# the outer query's snapshot is the statement's, so the answer it joins is only one committed
# before it.
_FINISH_FORWARD = Statement(
    "WITH recorded AS ("  # noqa: S608
    "INSERT INTO forwards "
    "(account_id, reference, token, destination, result, request_digest, created_at) "
    "VALUES (%(account_id)s, %(reference)s, %(token)s, %(destination)s, %(result)s, "
    "%(request_digest)s, %(now)s) "
    "ON CONFLICT DO NOTHING RETURNING reference"
    ") SELECT (SELECT count(*) FROM recorded) AS recorded, "
    f"{_RECORDED_FORWARD_COLUMNS} FROM (SELECT 1) AS one_row "
    f"LEFT OUTER JOIN {_THE_REFERENCES_FORWARD}"
)

_AUDIT_EVENT_COLUMNS = tuple(column.name for column in audit_events.columns)
_AUDIT_EVENT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(_AUDIT_EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(f'%({name})s' for name in _AUDIT_EVENT_COLUMNS)})"
)


@functools.cache
def _audit_events_insert(count: int) -> Statement:
    """An INSERT of `count` audit events, the parameters of the i-th suffixed `_i`."""
    rows = ", ".join(
        "(" + ", ".join(f"%({name}_{index})s" for name in _AUDIT_EVENT_COLUMNS) + ")"
        for index in range(count)
    )
    return Statement(
        f"INSERT INTO audit_events ({', '.join(_AUDIT_EVENT_COLUMNS)}) VALUES {rows}"  # noqa: S608
    )


# Records the forward's audit event and takes the card's CVC: the sealed CVC as it was (if it
# had not expired by `now`), and the format of the card it was taken from (a re-seal may have
# sealed it anew since the forward read the card), destroyed by the same statement. `held`
# locks the card's row only while it holds a CVC, and a concurrent forward that destroyed it
# first leaves this one waiting on the lock and then reading the row without it (READ COMMITTED
# re-reads a row locked FOR UPDATE once its locker commits), so one forward alone ever gets a
# CVC; after a concurrent re-seal, it reads the CVC as the re-seal sealed it. An UPDATE's
# RETURNING shows the new values; the old ones come from `held`.
# A forward of a reference audited as sent after a time: served by the index on the token.
_FORWARD_SENT_AFTER = Statement(
    "SELECT 1 FROM audit_events WHERE token = %(token)s AND reference = %(reference)s "
    "AND action = %(action)s AND succeeded AND created_at > %(after)s LIMIT 1"
)
_AUDIT_FORWARD_TAKING_CVC = Statement(
    "WITH held AS ("  # noqa: S608
    "SELECT token, cvc_ciphertext, cvc_expires_at, seal_format, exp_month, exp_year, "
    "billing_details, fingerprint FROM cards "
    "WHERE token = %(token)s "
    "AND (cvc_ciphertext IS NOT NULL OR cvc_expires_at IS NOT NULL) FOR UPDATE"
    "), taken AS ("
    "UPDATE cards SET cvc_ciphertext = NULL, cvc_expires_at = NULL FROM held "
    "WHERE cards.token = held.token "
    "RETURNING held.cvc_ciphertext AS cvc_ciphertext, held.cvc_expires_at AS cvc_expires_at, "
    "held.seal_format AS seal_format, held.exp_month AS exp_month, "
    "held.exp_year AS exp_year, held.billing_details AS billing_details, "
    "held.fingerprint AS fingerprint"
    f"), audited AS ({_AUDIT_EVENT_INSERT}) "
    "SELECT (SELECT cvc_ciphertext FROM taken WHERE cvc_expires_at > %(now)s) AS cvc, "
    "(SELECT cvc_expires_at FROM taken) AS cvc_expires_at, "
    "(SELECT seal_format FROM taken) AS seal_format, "
    "(SELECT exp_month FROM taken) AS exp_month, (SELECT exp_year FROM taken) AS exp_year, "
    "(SELECT billing_details FROM taken) AS billing_details, "
    "(SELECT fingerprint FROM taken) AS fingerprint"
)

# Puts a CVC a forward took back in its card's slot, for a forward the destination refused
# before carrying it out (`VaultService.forward`). Only into the row it was taken from as it
# was then: not deleted, still the account's, of the format the CVC is sealed for, and with
# its slot still empty, so that a CVC is never put where one is held (nor where a forward
# could read two); with the expiry, billing details and fingerprint the CVC's seal binds (an
# update of the card's details, or its re-fingerprinting, re-sealed it under others meanwhile);
# and only while it has not expired.
_PUT_CVC_BACK = Statement(
    "UPDATE cards SET cvc_ciphertext = %(cvc)s, cvc_expires_at = %(cvc_expires_at)s "
    "WHERE token = %(token)s AND account_id = %(account_id)s "
    "AND seal_format = %(seal_format)s AND deleted_at IS NULL "
    "AND exp_month = %(exp_month)s AND exp_year = %(exp_year)s "
    "AND billing_details = %(billing_details)s AND fingerprint = %(fingerprint)s "
    "AND cvc_ciphertext IS NULL AND %(cvc_expires_at)s > %(now)s "
    "RETURNING token",
    json=frozenset({"billing_details"}),
)

# The key ring's lock, transaction-scoped. Every write of a wrapped data key (a tokenization,
# a re-wrap batch) holds it shared from before it reads the key file until it commits; a change
# of which key versions may unwrap (retiring, removing) holds it exclusively while it counts
# the data keys wrapped under them and rewrites the key file. So the count sees every data key
# wrapped under a ring read before the change, and every data key written after the change is
# wrapped under a ring read after it: a version is never retired or removed under a data key
# that is about to be committed. The namespace "vkey" keeps it apart from every other advisory
# lock (the migrations' single-number keys among them).
_KEY_RING_LOCK_PARAMS = {"namespace": 0x766B6579, "key": 1}
_HOLD_KEY_RING_SHARED = Statement(
    "SELECT pg_advisory_xact_lock_shared(%(namespace)s, %(key)s) AS held"
)
_HOLD_KEY_RING_EXCLUSIVE = Statement("SELECT pg_advisory_xact_lock(%(namespace)s, %(key)s) AS held")

# The condition of `ix_cards_live_to_reseal` (vault migrations 0008, 0010): cards not deleted
# sealed in a format before the newest, or whose fingerprint is not their account's alone.
# Written out as a constant rather than a bound parameter: the
# planner uses a partial index only for a query whose condition it can prove implies the
# index's, which a prepared statement's parameter does not.
_TO_RESEAL_LIVE = and_(
    cards.c.deleted_at.is_(None),
    or_(
        cards.c.seal_format < literal_column(str(SealFormat.METADATA_BOUND.value)),
        cards.c.fingerprint_scope < literal_column(str(FingerprintScope.ACCOUNT.value)),
    ),
)

_AUDIT_EVENTS = TableStatements(audit_events, key=("id",))
_CARDS = TableStatements(cards, key=("token",))


# The columns of a card its seals bind the digest of (`remit.vault.card_metadata`), besides its
# token and account.
_METADATA_COLUMNS = (
    cards.c.livemode,
    cards.c.brand,
    cards.c.last4,
    cards.c.exp_month,
    cards.c.exp_year,
    cards.c.fingerprint,
    cards.c.funding,
    cards.c.country,
    cards.c.billing_details,
)


def _summary_from_mapping(m: Mapping[Any, Any]) -> CardSummary:
    return CardSummary(
        brand=Brand(m["brand"]),
        last4=m["last4"],
        exp_month=m["exp_month"],
        exp_year=m["exp_year"],
        fingerprint=m["fingerprint"],
        funding=Funding(m["funding"]),
        country=m["country"],
    )


def _metadata_from_mapping(m: Mapping[Any, Any]) -> bytes:
    """The digest of the metadata of a row holding `_METADATA_COLUMNS` and `created_at`."""
    return metadata_digest(
        livemode=m["livemode"],
        summary=_summary_from_mapping(m),
        billing_details=m["billing_details"],
        created_at=m["created_at"],
    )


def _card_from_row(row: Row[tuple[object, ...]]) -> StoredCard:
    return _card_from_mapping(row._mapping)


def _card_from_mapping(m: Mapping[Any, Any]) -> StoredCard:
    return StoredCard(
        token=m["token"],
        account_id=m["account_id"],
        livemode=m["livemode"],
        sealed=SealedCard(
            kek_name=m["kek_name"],
            kek_version=m["kek_version"],
            wrapped_data_key=bytes(m["wrapped_data_key"]),
            number_ciphertext=bytes(m["number_ciphertext"]),
            cvc_ciphertext=None if m["cvc_ciphertext"] is None else bytes(m["cvc_ciphertext"]),
            # An unknown value is kept as `UNRECOGNIZED`, which no seal opens under: the card is
            # refused as tampered when used, rather than the read failing as a bug would.
            seal_format=SealFormat.stored(m["seal_format"]),
        ),
        summary=_summary_from_mapping(m),
        billing_details=m["billing_details"],
        created_at=m["created_at"],
        cvc_expires_at=m["cvc_expires_at"],
        deleted_at=m["deleted_at"],
        fingerprint_scope=FingerprintScope(m["fingerprint_scope"]),
    )


def _recorded_forward(m: Mapping[Any, Any]) -> RecordedForward | None:
    """The recorded answer a row of `_RECORDED_FORWARD_COLUMNS` holds, if it holds one."""
    if m["recorded_result"] is None:
        return None
    digest = m["recorded_digest"]
    return RecordedForward(
        result=bytes(m["recorded_result"]),
        token=m["recorded_token"],
        destination=m["recorded_destination"],
        request_digest=None if digest is None else bytes(digest),
    )


def _audit_from_row(row: Row[tuple[object, ...]]) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        id=m["id"],
        created_at=m["created_at"],
        action=AuditAction(m["action"]),
        requester=m["requester"],
        purpose=m["purpose"],
        succeeded=m["succeeded"],
        token=m["token"],
        account_id=m["account_id"],
        destination=m["destination"],
        reference=m["reference"],
        key_version=m["key_version"],
    )


def _audit_params(event: AuditEvent) -> dict[str, object]:
    return {
        "id": event.id,
        "created_at": event.created_at,
        "action": event.action.value,
        "requester": event.requester,
        "purpose": event.purpose,
        "token": event.token,
        "account_id": event.account_id,
        "destination": event.destination,
        "reference": event.reference,
        "succeeded": event.succeeded,
        "key_version": event.key_version,
    }


def cards_wrapped_below_query(
    version: int, limit: int, *, after: tuple[int, str] | None
) -> Select[Any]:
    """The query of `SqlVaultRepository.cards_wrapped_below`: a range of the index of the cards
    not deleted by (key version, token), `ix_cards_live_kek_version` (vault migration 0005)."""
    conditions = [cards.c.kek_version < version, cards.c.deleted_at.is_(None)]
    if after is not None:
        conditions.append(tuple_(cards.c.kek_version, cards.c.token) > tuple_(*after))
    return (
        select(cards)
        .where(*conditions)
        .order_by(cards.c.kek_version, cards.c.token)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


@dataclass(frozen=True)
class TakenCvc:
    """A CVC a forward took, when it was to expire, and the format, expiry, billing details and
    fingerprint of the card as it was taken from it (what the CVC's seal binds,
    `card_metadata`)."""

    sealed: bytes
    expires_at: datetime
    seal_format: SealFormat
    exp_month: int
    exp_year: int
    billing_details: Mapping[str, object]
    fingerprint: str


def tokens_to_reseal_query(limit: int, *, after: str | None) -> Select[Any]:
    """The query of `SqlVaultRepository.tokens_to_reseal`: a range of the index of the cards
    left to re-seal, `ix_cards_live_to_reseal` (vault migration 0008)."""
    conditions = [_TO_RESEAL_LIVE]
    if after is not None:
        conditions.append(cards.c.token > after)
    return select(cards.c.token).where(*conditions).order_by(cards.c.token).limit(limit)


class SqlVaultRepository:
    def __init__(self, connection: Db) -> None:
        self._db = connection

    @property
    def _sa(self) -> AsyncConnection:
        return sqlalchemy_unit(self._db)

    # --- cards -------------------------------------------------------------------------

    async def insert_card(self, card: StoredCard) -> None:
        s = card.summary
        await self._sa.execute(
            cards.insert().values(
                token=card.token,
                account_id=card.account_id,
                livemode=card.livemode,
                kek_name=card.sealed.kek_name,
                kek_version=card.sealed.kek_version,
                wrapped_data_key=card.sealed.wrapped_data_key,
                number_ciphertext=card.sealed.number_ciphertext,
                cvc_ciphertext=card.sealed.cvc_ciphertext,
                cvc_expires_at=card.cvc_expires_at,
                seal_format=card.sealed.seal_format.value,
                fingerprint=s.fingerprint,
                fingerprint_scope=card.fingerprint_scope.value,
                brand=s.brand.value,
                last4=s.last4,
                exp_month=s.exp_month,
                exp_year=s.exp_year,
                funding=s.funding.value,
                country=s.country,
                billing_details=dict(card.billing_details),
                created_at=card.created_at,
            )
        )

    async def get_card(self, token: str, *, for_update: bool = False) -> StoredCard | None:
        by_token = _CARDS.select_for_update if for_update else _CARDS.select
        row = await by_token.first(self._db, {"token": token})
        return None if row is None else _card_from_mapping(row)

    async def get_cards(self, tokens: list[str]) -> dict[str, StoredCard]:
        """The cards among `tokens` that exist, deleted or not, by token, in one query."""
        rows = await self._sa.execute(select(cards).where(cards.c.token.in_(tokens)))
        return {row.token: _card_from_row(row) for row in rows}

    async def drop_expired_cvcs(self, now: datetime) -> int:
        result = await self._sa.execute(
            update(cards)
            .where(cards.c.cvc_ciphertext.is_not(None), cards.c.cvc_expires_at <= now)
            .values(cvc_ciphertext=None, cvc_expires_at=None)
        )
        return int(result.rowcount)

    async def shred_card(self, token: str, now: datetime) -> None:
        """Destroy the wrapped data key: the number's ciphertext becomes unreadable forever."""
        await self._sa.execute(
            update(cards)
            .where(cards.c.token == token)
            .values(
                wrapped_data_key=b"",
                number_ciphertext=b"",
                cvc_ciphertext=None,
                cvc_expires_at=None,
                deleted_at=now,
            )
        )

    async def prune_dead_card_versions(self) -> None:
        """Remove the dead row versions of `cards`, and with them the sealed numbers, wrapped
        data keys and CVCs that shredding and CVC destruction left in them (an UPDATE writes
        a new row version; the old one keeps its bytes until vacuumed). Not all of them: it
        keeps those a snapshot older than their deletion can still see, and skips those on a
        page another session has pinned at that instant (it does not wait for the pin); a
        later call removes them.

        Runs outside any transaction (VACUUM cannot run inside one). Leaving the indexes to
        autovacuum keeps the cost to the pages changed since the last run (the visibility
        map skips the rest): the dead versions' bytes go either way, only their line pointers
        wait. Not truncating the file's empty tail avoids the exclusive lock that takes."""
        await driver(self._db).execute("VACUUM (INDEX_CLEANUP OFF, TRUNCATE OFF) cards")

    async def cards_wrapped_below(
        self, version: int, limit: int, *, after: tuple[int, str] | None = None
    ) -> list[StoredCard]:
        """Up to `limit` cards not deleted whose data key is wrapped under a version below
        `version`, in (key version, token) order after `after`; those another transaction
        holds are skipped."""
        query = cards_wrapped_below_query(version, limit, after=after)
        return [_card_from_row(row) for row in (await self._sa.execute(query)).all()]

    async def count_wrapped_below(self, version: int) -> int:
        query = select(func.count()).where(
            cards.c.kek_version < version, cards.c.deleted_at.is_(None)
        )
        return int((await self._sa.execute(query)).scalar_one())

    async def count_live_wrapped_under(self, version: int) -> int:
        """Data keys of cards not deleted that are wrapped under exactly `version` (a deleted
        card's data key is destroyed: it depends on no version)."""
        query = select(func.count()).where(
            cards.c.kek_version == version, cards.c.deleted_at.is_(None)
        )
        return int((await self._sa.execute(query)).scalar_one())

    async def hold_key_ring_shared(self) -> None:
        """Until this transaction ends, no key version is retired or removed (see
        `_KEY_RING_LOCK_PARAMS`). Take it before reading the key ring that wraps."""
        await _HOLD_KEY_RING_SHARED.first(self._db, _KEY_RING_LOCK_PARAMS)

    async def hold_key_ring_exclusive(self) -> None:
        """Wait for every transaction writing a wrapped data key to end, and keep new ones
        waiting until this transaction ends."""
        await _HOLD_KEY_RING_EXCLUSIVE.first(self._db, _KEY_RING_LOCK_PARAMS)

    async def save_wrapping(self, token: str, sealed: SealedCard) -> None:
        await self._sa.execute(
            update(cards)
            .where(cards.c.token == token)
            .values(
                kek_name=sealed.kek_name,
                kek_version=sealed.kek_version,
                wrapped_data_key=sealed.wrapped_data_key,
            )
        )

    async def tokens_to_reseal(self, limit: int, *, after: str | None) -> list[str]:
        """Up to `limit` tokens of cards not deleted still sealed in a format before the
        newest, in token order after `after`; read without locking (each is locked as it is
        re-sealed)."""
        query = tokens_to_reseal_query(limit, after=after)
        return [str(token) for token in (await self._sa.execute(query)).scalars()]

    async def card_to_reseal(self, token: str) -> StoredCard | None:
        """The card, locked, if it is not deleted, is still sealed in a format before the
        newest, and no other transaction holds it (a re-seal in another vault process, a
        forward taking its CVC, a re-wrap): else None, and a later pass comes back to it."""
        query = (
            select(cards)
            .where(cards.c.token == token, _TO_RESEAL_LIVE)
            .with_for_update(skip_locked=True)
        )
        row = (await self._sa.execute(query)).first()
        return None if row is None else _card_from_row(row)

    async def save_reseal(
        self, token: str, sealed: SealedCard, cvc_expires_at: datetime | None, *, fingerprint: str
    ) -> None:
        """Replace the card's data key, sealed number and CVC, and its fingerprint with its
        account's own (locked by the caller): the seals bind the fingerprint, so neither is
        ever written without the other."""
        await self._sa.execute(
            update(cards)
            .where(cards.c.token == token)
            .values(
                fingerprint=fingerprint,
                fingerprint_scope=FingerprintScope.ACCOUNT.value,
                kek_name=sealed.kek_name,
                kek_version=sealed.kek_version,
                wrapped_data_key=sealed.wrapped_data_key,
                number_ciphertext=sealed.number_ciphertext,
                cvc_ciphertext=sealed.cvc_ciphertext,
                cvc_expires_at=cvc_expires_at if sealed.cvc_ciphertext is not None else None,
                seal_format=sealed.seal_format.value,
            )
        )

    async def save_details_resealed(self, card: StoredCard) -> None:
        """Replace the card's expiry, billing details and seals together (locked by the
        caller): the seals bind the new details, so neither is ever written without the
        other."""
        sealed = card.sealed
        await self._sa.execute(
            update(cards)
            .where(cards.c.token == card.token)
            .values(
                exp_month=card.summary.exp_month,
                exp_year=card.summary.exp_year,
                billing_details=dict(card.billing_details),
                kek_name=sealed.kek_name,
                kek_version=sealed.kek_version,
                wrapped_data_key=sealed.wrapped_data_key,
                number_ciphertext=sealed.number_ciphertext,
                cvc_ciphertext=sealed.cvc_ciphertext,
                cvc_expires_at=card.cvc_expires_at if sealed.cvc_ciphertext is not None else None,
                seal_format=sealed.seal_format.value,
            )
        )

    async def count_to_reseal(self) -> int:
        """Cards not deleted still sealed in a format before the newest."""
        query = select(func.count()).where(_TO_RESEAL_LIVE)
        return int((await self._sa.execute(query)).scalar_one())

    async def data_keys_by_version(self) -> dict[int, int]:
        query = (
            select(cards.c.kek_version, func.count())
            .where(cards.c.deleted_at.is_(None))
            .group_by(cards.c.kek_version)
        )
        return {int(version): int(count) for version, count in (await self._sa.execute(query))}

    async def card_created_at(self, token: str) -> datetime | None:
        """When the card was stored, deleted or not (a page of a listing may end on a card
        deleted since)."""
        query = select(cards.c.created_at).where(cards.c.token == token)
        return (await self._sa.execute(query)).scalar_one_or_none()

    async def live_cards_created_before(
        self, cutoff: datetime, *, limit: int, after: tuple[datetime, str] | None
    ) -> tuple[list[tuple[ListedCard, SealedCard, bytes]], bool]:
        """Up to `limit` cards not deleted, stored before `cutoff` and held by no test id, in
        (created_at, token) order after `after`, each with its seals and the digest of its
        metadata (for its binding to be checked; its sealed number and CVC are not read); and
        whether more follow.

        A test id's card is handed out again on every resolution of the test id however old it
        is, so its age says nothing about whether a request is about to use it."""
        c = cards.c
        held_by_test_id = exists().where(
            test_card_tokens.c.account_id == c.account_id, test_card_tokens.c.token == c.token
        )
        conditions = [c.deleted_at.is_(None), c.created_at < cutoff, ~held_by_test_id]
        if after is not None:
            conditions.append(tuple_(c.created_at, c.token) > tuple_(*after))
        query = (
            select(
                c.token,
                c.account_id,
                c.created_at,
                c.kek_name,
                c.kek_version,
                c.wrapped_data_key,
                c.seal_format,
                *_METADATA_COLUMNS,
            )
            .where(*conditions)
            .order_by(c.created_at, c.token)
            .limit(limit + 1)
        )
        rows = (await self._sa.execute(query)).all()
        listed = [
            (
                ListedCard(row.token, row.account_id, row.created_at),
                SealedCard(
                    kek_name=row.kek_name,
                    kek_version=row.kek_version,
                    wrapped_data_key=bytes(row.wrapped_data_key),
                    number_ciphertext=b"",
                    cvc_ciphertext=None,
                    seal_format=SealFormat.stored(row.seal_format),
                ),
                _metadata_from_mapping(row._mapping),
            )
            for row in rows[:limit]
        ]
        return listed, len(rows) > limit

    async def holds_cards(self) -> bool:
        """Whether any card was ever stored here, deleted or not."""
        return bool((await self._sa.execute(select(exists().select_from(cards)))).scalar_one())

    async def newest_live_card(self) -> StoredCard | None:
        query = (
            select(cards)
            .where(cards.c.deleted_at.is_(None))
            .order_by(cards.c.created_at.desc(), cards.c.token.desc())
            .limit(1)
        )
        row = (await self._sa.execute(query)).first()
        return None if row is None else _card_from_row(row)

    async def newest_live_key_version(self) -> int | None:
        """The newest key version a card not deleted has its data key wrapped under."""
        query = select(func.max(cards.c.kek_version)).where(cards.c.deleted_at.is_(None))
        version = (await self._sa.execute(query)).scalar_one_or_none()
        return None if version is None else int(version)

    # --- key check values --------------------------------------------------------------

    async def key_check_value(self, key_set: str) -> str | None:
        query = select(key_check_values.c.check_value).where(key_check_values.c.key_set == key_set)
        value = (await self._sa.execute(query)).scalar_one_or_none()
        return None if value is None else str(value)

    async def record_key_check_value(self, key_set: str, value: str, now: datetime) -> str:
        """Record `value` for the key set unless a value is recorded already (by a vault
        starting at the same time); the value recorded."""
        await self._sa.execute(
            insert(key_check_values)
            .values(key_set=key_set, check_value=value, recorded_at=now)
            .on_conflict_do_nothing()
        )
        recorded = await self.key_check_value(key_set)
        assert recorded is not None  # inserted, or there already
        return recorded

    # --- lost key versions ---------------------------------------------------------------

    async def declare_key_version_lost(
        self, key_ring: str, version: int, declared_by: str, now: datetime
    ) -> tuple[LostKeyVersion, bool]:
        """Record `version` of `key_ring` as lost unless it is already (the first declaration
        stands); the declaration recorded, and whether this made it."""
        made = await self._sa.execute(
            insert(lost_key_versions)
            .values(key_ring=key_ring, version=version, declared_by=declared_by, declared_at=now)
            .on_conflict_do_nothing()
            .returning(lost_key_versions.c.version)
        )
        newly = made.first() is not None
        recorded = await self.lost_key_version(key_ring, version)
        assert recorded is not None  # inserted, or there already
        return recorded, newly

    async def lost_key_version(self, key_ring: str, version: int) -> LostKeyVersion | None:
        query = select(lost_key_versions.c.declared_by, lost_key_versions.c.declared_at).where(
            lost_key_versions.c.key_ring == key_ring, lost_key_versions.c.version == version
        )
        row = (await self._sa.execute(query)).first()
        if row is None:
            return None
        return LostKeyVersion(
            version=version, declared_by=row.declared_by, declared_at=row.declared_at
        )

    # --- test cards --------------------------------------------------------------------

    async def test_card_token(self, account_id: str, test_id: str) -> str | None:
        query = select(test_card_tokens.c.token).where(
            test_card_tokens.c.account_id == account_id, test_card_tokens.c.test_id == test_id
        )
        token = (await self._sa.execute(query)).scalar_one_or_none()
        return None if token is None else str(token)

    async def test_card(
        self, account_id: str, test_id: str
    ) -> tuple[str, StoredCard | None] | None:
        """The token recorded for the test id and its card, in one statement; None if the test
        id has no token yet for the account."""
        row = await _TEST_CARD.first(self._db, {"account_id": account_id, "test_id": test_id})
        if row is None:
            return None
        token = str(row["test_card_token"])
        return token, None if row["token"] is None else _card_from_mapping(row)

    async def is_test_card(self, account_id: str, token: str) -> bool:
        """Whether the token is the card of one of the account's test ids (a range of the
        primary key: at most one row per test id)."""
        query = select(
            exists().where(
                test_card_tokens.c.account_id == account_id, test_card_tokens.c.token == token
            )
        )
        return bool((await self._sa.execute(query)).scalar_one())

    async def claim_test_card_token(
        self, account_id: str, test_id: str, token: str, *, replacing: str | None = None
    ) -> bool:
        """Record `token` for the test id (in place of the deleted token `replacing`, if
        given) unless another call won the race; True if we won.

        Winning is read from RETURNING, never from the row count: SQLAlchemy reports -1 as the
        row count of an INSERT, so a lost ON CONFLICT DO NOTHING would look like a win."""
        if replacing is None:
            claimed = await self._sa.execute(
                insert(test_card_tokens)
                .values(account_id=account_id, test_id=test_id, token=token)
                .on_conflict_do_nothing()
                .returning(test_card_tokens.c.token)
            )
        else:
            claimed = await self._sa.execute(
                update(test_card_tokens)
                .where(
                    test_card_tokens.c.account_id == account_id,
                    test_card_tokens.c.test_id == test_id,
                    test_card_tokens.c.token == replacing,
                )
                .values(token=token)
                .returning(test_card_tokens.c.token)
            )
        return claimed.first() is not None

    # --- forwards ----------------------------------------------------------------------

    async def forwarded_result(self, account_id: str, reference: str) -> RecordedForward | None:
        row = await _FORWARDED_RESULT.first(
            self._db, {"account_id": account_id, "reference": reference}
        )
        return None if row is None else _recorded_forward(row)

    async def forward_start(
        self, account_id: str, reference: str, token: str
    ) -> tuple[RecordedForward | None, StoredCard | None]:
        """In one statement: the answer already recorded for the reference (if any), with what
        it was recorded for, and the card (if it exists)."""
        params = {"account_id": account_id, "reference": reference, "token": token}
        row = await _FORWARD_START.first(self._db, params)
        assert row is not None  # the statement always returns its one row
        card = None if row["token"] is None else _card_from_mapping(row)
        return _recorded_forward(row), card

    async def audit_forward_taking_cvc(self, event: AuditEvent, now: datetime) -> TakenCvc | None:
        """In one statement: record the forward's audit event, and take the card's CVC, which
        the statement destroys. The sealed CVC if this call took one still held at `now`;
        None if the card held none, it had expired (destroyed all the same), or a concurrent
        forward took it first."""
        params = {**_audit_params(event), "now": now}
        row = await _AUDIT_FORWARD_TAKING_CVC.first(self._db, params)
        assert row is not None  # the statement always returns its one row
        if row["cvc"] is None:
            return None
        return TakenCvc(
            bytes(row["cvc"]), row["cvc_expires_at"], SealFormat.stored(row["seal_format"]),
            row["exp_month"], row["exp_year"], row["billing_details"], row["fingerprint"],
        )  # fmt: skip

    async def put_cvc_back(
        self, card: StoredCard, sealed_cvc: bytes, seal_format: SealFormat,
        expires_at: datetime, now: datetime,
    ) -> bool:  # fmt: skip
        """Put a CVC a forward took back into the empty slot of `card` (as the CVC is sealed
        for it: `_PUT_CVC_BACK`); False if the slot is held, the card changed or is gone, or
        the CVC expired by `now`."""
        params = {
            "token": card.token,
            "account_id": card.account_id,
            "cvc": sealed_cvc,
            "seal_format": seal_format.value,
            "exp_month": card.summary.exp_month,
            "exp_year": card.summary.exp_year,
            "billing_details": dict(card.billing_details),
            "fingerprint": card.summary.fingerprint,
            "cvc_expires_at": expires_at,
            "now": now,
        }
        return await _PUT_CVC_BACK.first(self._db, params) is not None

    async def finish_forward(
        self, account_id: str, reference: str, token: str, destination: str,
        request_digest: bytes, result: bytes, now: datetime,
    ) -> RecordedForward | None:  # fmt: skip
        """Record the reference's answer, for the forward whose parameters have
        `request_digest` (`remit.vault.forward_replay`), unless one is recorded already. None
        if this answer is now the recorded one, else the one recorded first, which may be for
        other parameters."""
        params = {
            "account_id": account_id,
            "reference": reference,
            "token": token,
            "destination": destination,
            "result": result,
            "request_digest": request_digest,
            "now": now,
        }
        row = await _FINISH_FORWARD.first(self._db, params)
        assert row is not None  # the statement always returns its one row
        if row["recorded"]:
            return None
        earlier = _recorded_forward(row)
        if earlier is not None:
            return earlier
        # The earlier answer was committed while this statement ran, after its snapshot.
        again = await self.forwarded_result(account_id, reference)
        assert again is not None
        return again

    # --- audit -------------------------------------------------------------------------

    async def forward_sent_after(self, token: str, reference: str, after: datetime) -> bool:
        """Whether a forward of `reference` with the card `token` was audited as sent after
        `after` (or as one the destination refused unstarted whose CVC was put back, which
        went nowhere: counted all the same, which only makes its caller wait a little)."""
        params = {
            "token": token,
            "reference": reference,
            "action": AuditAction.FORWARD.value,
            "after": after,
        }
        return await _FORWARD_SENT_AFTER.first(self._db, params) is not None

    async def insert_audit_event(self, event: AuditEvent) -> None:
        await _AUDIT_EVENTS.insert(_AUDIT_EVENT_COLUMNS).run(self._db, _audit_params(event))

    async def insert_audit_events(self, events: list[AuditEvent]) -> None:
        """Record `events` in one statement: all of them or none."""
        params = {
            f"{name}_{index}": value
            for index, event in enumerate(events)
            for name, value in _audit_params(event).items()
        }
        await _audit_events_insert(len(events)).run(self._db, params)

    async def audit_anchor(self, event_id: str) -> tuple[datetime, str] | None:
        query = select(audit_events.c.created_at, audit_events.c.id).where(
            audit_events.c.id == event_id
        )
        row = (await self._sa.execute(query)).first()
        return None if row is None else (row[0], row[1])

    async def list_audit_events(
        self,
        wanted: AuditFilter,
        *,
        starting_after: tuple[datetime, str] | None,
        ending_before: tuple[datetime, str] | None,
    ) -> tuple[list[AuditEvent], bool]:
        c = audit_events.c
        conditions = []
        for column, value in (
            (c.account_id, wanted.account_id),
            (c.token, wanted.token),
            (c.requester, wanted.requester),
            (c.action, None if wanted.action is None else wanted.action.value),
        ):
            if value is not None:
                conditions.append(column == value)
        for bound, op in (
            (wanted.created_gte, c.created_at.__ge__),
            (wanted.created_gt, c.created_at.__gt__),
            (wanted.created_lte, c.created_at.__le__),
            (wanted.created_lt, c.created_at.__lt__),
        ):
            if bound is not None:
                conditions.append(op(bound))
        rows, has_more = await fetch_page(
            self._sa,
            audit_events,
            conditions,
            limit=wanted.limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_audit_from_row(row) for row in rows], has_more
