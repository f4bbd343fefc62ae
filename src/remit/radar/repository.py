"""Radar's persistence in the caller's transaction. Every query names the account."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row, RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.radar.domain import (
    ItemType,
    Rule,
    RuleAction,
    ValueList,
    ValueListItem,
)
from remit.radar.rules import ListValues
from remit.radar.tables import (
    radar_counters,
    radar_rules,
    radar_value_list_items,
    radar_value_lists,
)
from remit.radar.velocity import Counter, Dimension
from remit.storage.fastsql import Statement
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, fetch_page

AnyRow = Row[tuple[object, ...]]


def value_key(value: str, item_type: ItemType) -> str:
    """How a list value is compared: exactly for case-sensitive lists, else casefolded."""
    return value if item_type is ItemType.CASE_SENSITIVE_STRING else value.casefold()


def _rule(row: AnyRow | Mapping[str, Any]) -> Rule:
    m = row if isinstance(row, Mapping) else row._mapping
    return Rule(
        id=m["id"],
        account_id=m["account_id"],
        action=RuleAction(m["action"]),
        predicate=m["predicate"],
        position=m["position"],
        created_at=m["created_at"],
        version=m["version"],
        # The payment path's read leaves it out: a disabled rule does not parse, and so never
        # runs (`remit.radar.gate.compile_stored`).
        disabled_reason=m.get("disabled_reason"),
    )


def _list(row: AnyRow) -> ValueList:
    m = row._mapping
    return ValueList(
        id=m["id"],
        account_id=m["account_id"],
        alias=m["alias"],
        name=m["name"],
        item_type=ItemType(m["item_type"]),
        created_at=m["created_at"],
        created_by=m["created_by"],
        metadata=m["metadata"],
    )


def _item(row: AnyRow) -> ValueListItem:
    m = row._mapping
    return ValueListItem(
        id=m["id"],
        account_id=m["account_id"],
        value_list_id=m["value_list_id"],
        value=m["value"],
        created_at=m["created_at"],
        created_by=m["created_by"],
    )


@dataclass(frozen=True)
class ListsFound:
    """What an attempt's rules need of the value lists they name: for each alias, which of the
    attempt's own values its list holds, and the item type of each of those lists that exists
    (a rule naming one that is missing, or of the wrong type, does not run:
    remit.radar.validity)."""

    values: dict[str, ListValues]
    item_types: dict[str, ItemType]


@dataclass(frozen=True)
class AttemptRules:
    """What Radar reads for a payment attempt, in one statement."""

    enabled: bool
    # The account's rules, in order (none when Radar is off).
    rules: list[Rule]
    # The email of the customer asked for (`remit.radar.signals.customer_for_email`), if it
    # has one and is not deleted.
    customer_email: str | None = None


# The customer's email comes with the rules, by primary key in a subquery run once, so that
# `:email:` can fall back to it without a statement of its own on the payment path.
_FOR_ATTEMPT = Statement(
    "SELECT accounts.radar_enabled,"
    " (SELECT customers.email FROM customers WHERE customers.id = %(customer_id)s"
    " AND customers.account_id = %(account_id)s AND customers.deleted_at IS NULL)"
    " AS customer_email,"
    " radar_rules.id, radar_rules.account_id, radar_rules.action,"
    " radar_rules.predicate, radar_rules.position, radar_rules.created_at, radar_rules.version"
    " FROM accounts LEFT OUTER JOIN radar_rules ON radar_rules.account_id = accounts.id"
    " WHERE accounts.id = %(account_id)s ORDER BY radar_rules.position"
)


class RuleRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def lock_account_rules(self, account_id: str) -> list[Rule]:
        """All rules of the account in order, locked: positions change together."""
        rows = await self._db.execute(
            select(radar_rules)
            .where(radar_rules.c.account_id == account_id)
            .order_by(radar_rules.c.position)
            .with_for_update()
        )
        return [_rule(row) for row in rows]

    async def for_attempt(self, account_id: str, customer_id: str | None) -> AttemptRules:
        """Whether Radar is on for the account, its rules in order, and the email of the
        customer `customer_id` (None: none is needed): one query, run on every payment, so it
        goes straight to the driver (remit.storage.fastsql)."""
        rows = await _FOR_ATTEMPT.rows(
            self._db, {"account_id": account_id, "customer_id": customer_id}
        )
        if not rows or not rows[0]["radar_enabled"]:
            return AttemptRules(enabled=False, rules=[])
        return AttemptRules(
            enabled=True,
            rules=[_rule(row) for row in rows if row["id"] is not None],
            customer_email=rows[0]["customer_email"],
        )

    async def in_order(self, account_id: str) -> list[Rule]:
        rows = await self._db.execute(
            select(radar_rules)
            .where(radar_rules.c.account_id == account_id)
            .order_by(radar_rules.c.position)
        )
        return [_rule(row) for row in rows]

    async def get(self, account_id: str, rule_id: str) -> Rule | None:
        row = (
            await self._db.execute(
                select(radar_rules).where(
                    radar_rules.c.account_id == account_id, radar_rules.c.id == rule_id
                )
            )
        ).first()
        return None if row is None else _rule(row)

    async def get_many(self, account_id: str, rule_ids: Iterable[str]) -> dict[str, Rule]:
        """The account's rules among `rule_ids`, by id (one query; ids of no rule left out)."""
        wanted = list(dict.fromkeys(rule_ids))
        if not wanted:
            return {}
        rows = await self._db.execute(
            select(radar_rules).where(
                radar_rules.c.account_id == account_id, radar_rules.c.id.in_(wanted)
            )
        )
        return {rule.id: rule for rule in map(_rule, rows)}

    async def insert(self, rule: Rule) -> None:
        await self._db.execute(
            radar_rules.insert().values(
                id=rule.id,
                account_id=rule.account_id,
                action=rule.action.value,
                predicate=rule.predicate,
                position=rule.position,
                created_at=rule.created_at,
                version=rule.version or 1,
                disabled_reason=rule.disabled_reason,
            )
        )

    async def save(self, rule: Rule) -> None:
        await self._db.execute(
            update(radar_rules)
            .where(radar_rules.c.id == rule.id)
            .values(
                action=rule.action.value,
                predicate=rule.predicate,
                position=rule.position,
                version=rule.version or 1,
                disabled_reason=rule.disabled_reason,
            )
        )

    async def delete(self, account_id: str, rule_id: str) -> None:
        await self._db.execute(
            radar_rules.delete().where(
                radar_rules.c.account_id == account_id, radar_rules.c.id == rule_id
            )
        )


class ValueListRepository:
    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def insert(self, value_list: ValueList) -> bool:
        """Add the list; False, adding nothing, when the account has a list of its alias. A
        concurrent create of the alias waits here for the other to end (the unique
        constraint), then adds it only if that one rolled back."""
        statement = insert(radar_value_lists).values(
            id=value_list.id,
            account_id=value_list.account_id,
            alias=value_list.alias,
            name=value_list.name,
            item_type=value_list.item_type.value,
            metadata=dict(value_list.metadata),
            created_by=value_list.created_by,
            created_at=value_list.created_at,
        )
        inserted = await self._db.execute(
            statement.on_conflict_do_nothing(index_elements=["account_id", "alias"]).returning(
                radar_value_lists.c.id
            )
        )
        return inserted.first() is not None

    async def get(self, account_id: str, list_id: str) -> ValueList | None:
        row = (
            await self._db.execute(
                select(radar_value_lists).where(
                    radar_value_lists.c.account_id == account_id, radar_value_lists.c.id == list_id
                )
            )
        ).first()
        return None if row is None else _list(row)

    async def lock(self, account_id: str, list_id: str) -> ValueList | None:
        """The list, locked FOR UPDATE until the transaction ends (to delete it)."""
        row = (
            await self._db.execute(
                select(radar_value_lists)
                .where(
                    radar_value_lists.c.account_id == account_id, radar_value_lists.c.id == list_id
                )
                .with_for_update()
            )
        ).first()
        return None if row is None else _list(row)

    async def lock_item_types(self, account_id: str, aliases: Iterable[str]) -> dict[str, ItemType]:
        """The item type of each of these lists that exists, by alias, locked FOR SHARE until
        the transaction ends: none of them can be deleted meanwhile (a delete locks FOR
        UPDATE)."""
        wanted = sorted(set(aliases))
        if not wanted:
            return {}
        rows = await self._db.execute(
            select(radar_value_lists.c.alias, radar_value_lists.c.item_type)
            .where(
                radar_value_lists.c.account_id == account_id,
                radar_value_lists.c.alias.in_(wanted),
            )
            .order_by(radar_value_lists.c.alias)
            .with_for_update(read=True)
        )
        return {alias: ItemType(item_type) for alias, item_type in rows}

    async def item_types(self, account_id: str, aliases: Iterable[str]) -> dict[str, ItemType]:
        """The item type of each of these lists that exists, by alias (unlocked: to show)."""
        wanted = sorted(set(aliases))
        if not wanted:
            return {}
        rows = await self._db.execute(
            select(radar_value_lists.c.alias, radar_value_lists.c.item_type).where(
                radar_value_lists.c.account_id == account_id,
                radar_value_lists.c.alias.in_(wanted),
            )
        )
        return {alias: ItemType(item_type) for alias, item_type in rows}

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: Cursor | None,
        ending_before: Cursor | None,
        created: CreatedBounds = ANY_TIME,
        alias: str | None = None,
        contains: Mapping[ItemType, str] | None = None,
    ) -> tuple[list[ValueList], bool]:
        """`contains`: the lists holding a value, given as the value_key it has in a list of
        each item type (a type missing from it cannot hold the value)."""
        conditions: list[ColumnElement[bool]] = [radar_value_lists.c.account_id == account_id]
        if alias is not None:
            conditions.append(radar_value_lists.c.alias == alias)
        if contains is not None:
            types_by_key: dict[str, list[str]] = {}
            for item_type, key in contains.items():
                types_by_key.setdefault(key, []).append(item_type.value)
            conditions.append(
                or_(
                    false(),
                    *(
                        radar_value_lists.c.item_type.in_(types)
                        & radar_value_lists.c.id.in_(
                            select(radar_value_list_items.c.value_list_id).where(
                                radar_value_list_items.c.account_id == account_id,
                                radar_value_list_items.c.value_key == key,
                            )
                        )
                        for key, types in types_by_key.items()
                    ),
                )
            )
        rows, more = await fetch_page(
            self._db,
            radar_value_lists,
            [*conditions, *created.conditions(radar_value_lists)],
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_list(row) for row in rows], more

    async def delete(self, account_id: str, list_id: str) -> int:
        """Delete the list and its items; how many items it held."""
        items = await self._db.execute(
            radar_value_list_items.delete().where(
                radar_value_list_items.c.account_id == account_id,
                radar_value_list_items.c.value_list_id == list_id,
            )
        )
        await self._db.execute(
            radar_value_lists.delete().where(
                radar_value_lists.c.account_id == account_id, radar_value_lists.c.id == list_id
            )
        )
        return int(items.rowcount)

    async def insert_item(self, item: ValueListItem, item_type: ItemType) -> bool:
        """Add the item; False, adding nothing, when its list holds its value already. A
        concurrent add of the value waits here for the other to end (the unique index), then
        adds it only if that one rolled back."""
        statement = insert(radar_value_list_items).values(
            id=item.id,
            account_id=item.account_id,
            value_list_id=item.value_list_id,
            value=item.value,
            value_key=value_key(item.value, item_type),
            created_by=item.created_by,
            created_at=item.created_at,
        )
        inserted = await self._db.execute(
            statement.on_conflict_do_nothing(
                index_elements=["value_list_id", "value_key"]
            ).returning(radar_value_list_items.c.id)
        )
        return inserted.first() is not None

    async def get_item(self, account_id: str, item_id: str) -> ValueListItem | None:
        row = (
            await self._db.execute(
                select(radar_value_list_items).where(
                    radar_value_list_items.c.account_id == account_id,
                    radar_value_list_items.c.id == item_id,
                )
            )
        ).first()
        return None if row is None else _item(row)

    async def delete_item(self, account_id: str, item_id: str) -> bool:
        """Whether this deleted the item (a concurrent delete may have come first)."""
        deleted = await self._db.execute(
            radar_value_list_items.delete().where(
                radar_value_list_items.c.account_id == account_id,
                radar_value_list_items.c.id == item_id,
            )
        )
        return bool(deleted.rowcount)

    async def first_items(self, value_list_id: str, limit: int) -> tuple[list[ValueListItem], bool]:
        rows = await self._db.execute(
            select(radar_value_list_items)
            .where(radar_value_list_items.c.value_list_id == value_list_id)
            .order_by(
                radar_value_list_items.c.created_at.desc(), radar_value_list_items.c.id.desc()
            )
            .limit(limit + 1)
        )
        items = [_item(row) for row in rows]
        return items[:limit], len(items) > limit

    async def item_page(
        self,
        account_id: str,
        value_list_id: str,
        *,
        limit: int,
        starting_after: Cursor | None,
        ending_before: Cursor | None,
        created: CreatedBounds = ANY_TIME,
        key: str | None = None,
    ) -> tuple[list[ValueListItem], bool]:
        """`key`: only the item holding the value whose value_key this is."""
        conditions: list[ColumnElement[bool]] = [
            radar_value_list_items.c.account_id == account_id,
            radar_value_list_items.c.value_list_id == value_list_id,
        ]
        if key is not None:
            conditions.append(radar_value_list_items.c.value_key == key)
        rows, more = await fetch_page(
            self._db,
            radar_value_list_items,
            [*conditions, *created.conditions(radar_value_list_items)],
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [_item(row) for row in rows], more

    async def matching(
        self, account_id: str, aliases: Iterable[str], candidates: Iterable[str]
    ) -> ListsFound:
        """For each alias, which of the attempt's own values its list holds, and the lists'
        item types: one query, a lookup of a handful of values through an index, never a read
        of whole lists."""
        wanted = sorted(set(aliases))
        values = {c for c in candidates if c}
        lists: dict[str, ListValues] = {alias: ListValues(frozenset()) for alias in wanted}
        if not wanted:
            return ListsFound(lists, {})
        keys = values | {v.casefold() for v in values}
        rows = await self._db.execute(
            select(
                radar_value_lists.c.alias,
                radar_value_lists.c.item_type,
                radar_value_list_items.c.value_key,
            )
            .select_from(
                radar_value_lists.outerjoin(
                    radar_value_list_items,
                    (radar_value_list_items.c.value_list_id == radar_value_lists.c.id)
                    & radar_value_list_items.c.value_key.in_(sorted(keys)),
                )
            )
            .where(
                radar_value_lists.c.account_id == account_id,
                radar_value_lists.c.alias.in_(wanted),
            )
        )
        found: dict[str, set[str]] = {}
        item_types: dict[str, ItemType] = {}
        for alias, item_type, key in rows:
            item_types[alias] = ItemType(item_type)
            if key is not None:
                found.setdefault(alias, set()).add(key)
        for alias, keys_found in found.items():
            sensitive = item_types[alias] is ItemType.CASE_SENSITIVE_STRING
            lists[alias] = ListValues(frozenset(keys_found), case_sensitive=sensitive)
        return ListsFound(lists, item_types)


def _counter(m: RowMapping) -> Counter:
    return Counter(
        first_seen_at=m["first_seen_at"],
        last_minute=int(m["last_minute"]),
        last_hour=int(m["last_hour"]),
        attempts_by_minute=tuple(m["attempts_by_minute"]),
        attempts_by_hour=tuple(m["attempts_by_hour"]),
        declines_by_hour=tuple(m["declines_by_hour"]),
        declines_in_a_row=int(m["declines_in_a_row"]),
        last_cvc_check=m["last_cvc_check"],
        last_postal_check=m["last_postal_check"],
        last_declined_at=m["last_declined_at"],
    )


def _counter_values(counter: Counter) -> dict[str, object]:
    return {
        "first_seen_at": counter.first_seen_at,
        "last_minute": counter.last_minute,
        "last_hour": counter.last_hour,
        "attempts_by_minute": list(counter.attempts_by_minute),
        "attempts_by_hour": list(counter.attempts_by_hour),
        "declines_by_hour": list(counter.declines_by_hour),
        "declines_in_a_row": counter.declines_in_a_row,
        "last_cvc_check": counter.last_cvc_check,
        "last_postal_check": counter.last_postal_check,
        "last_declined_at": counter.last_declined_at,
    }


_REPLACE_LISTED_FINGERPRINTS = text(
    # An item whose list holds the new fingerprint already is the same card twice: dropped.
    # The update leaves out the rows the delete takes (one statement sees one snapshot).
    "WITH replaced AS (SELECT * FROM unnest(CAST(:old_keys AS text[]),"
    " CAST(:new_values AS text[]), CAST(:new_keys AS text[])) AS r(old_key, new_value, new_key)),"
    " items AS (SELECT i.id, i.value_list_id, r.new_value, r.new_key"
    " FROM radar_value_list_items AS i"
    " JOIN radar_value_lists AS l ON l.id = i.value_list_id"
    " JOIN replaced AS r ON r.old_key = i.value_key"
    " WHERE l.account_id = :account_id AND l.item_type = 'card_fingerprint'),"
    " dropped AS (DELETE FROM radar_value_list_items AS i USING items"
    " WHERE i.id = items.id AND EXISTS (SELECT 1 FROM radar_value_list_items AS n"
    " WHERE n.value_list_id = items.value_list_id AND n.value_key = items.new_key)"
    " RETURNING i.id),"
    " moved AS (UPDATE radar_value_list_items AS i"
    " SET value = items.new_value, value_key = items.new_key FROM items"
    " WHERE i.id = items.id AND i.id NOT IN (SELECT id FROM dropped) RETURNING i.id)"
    " SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM dropped)"
)
_MOVE_CARD_COUNTERS = text(
    # A card whose new fingerprint has counters already (it was used again since) keeps
    # those; the old ones age out of every window.
    "UPDATE radar_counters AS c SET key = r.new_key"
    " FROM unnest(CAST(:old_keys AS text[]), CAST(:new_keys AS text[])) AS r(old_key, new_key)"
    " WHERE c.account_id = :account_id AND c.dimension = :dimension AND c.key = r.old_key"
    " AND NOT EXISTS (SELECT 1 FROM radar_counters AS n WHERE n.account_id = :account_id"
    " AND n.dimension = :dimension AND n.key = r.new_key)"
)


async def replace_card_fingerprints(
    db: AsyncConnection, account_id: str, replaced: Mapping[str, str]
) -> int:
    """Rewrite the account's Radar data held under a card's old fingerprint (`replaced`: old
    to new, as the vault answered them) to its new one: the items of its `card_fingerprint`
    lists, and the card's velocity counters. How many list items changed."""
    if not replaced:
        return 0
    olds, news = list(replaced), list(replaced.values())
    items = await db.execute(
        _REPLACE_LISTED_FINGERPRINTS,
        {
            "account_id": account_id,
            "old_keys": [value_key(old, ItemType.CARD_FINGERPRINT) for old in olds],
            "new_values": news,
            "new_keys": [value_key(new, ItemType.CARD_FINGERPRINT) for new in news],
        },
    )
    await db.execute(
        _MOVE_CARD_COUNTERS,
        {
            "account_id": account_id,
            "dimension": Dimension.CARD.value,
            "old_keys": olds,
            "new_keys": news,
        },
    )
    return int(items.scalar_one())


class CounterRepository:
    """Velocity rows: at most three per attempt, each read and written by primary key."""

    def __init__(self, db: AsyncConnection) -> None:
        self._db = db

    async def lock(
        self, account_id: str, keys: Mapping[Dimension, str], now: datetime
    ) -> dict[Dimension, Counter]:
        """The attempt's counters, created if new, locked until the transaction ends (so
        concurrent attempts on one card count one after the other, exactly). One statement:
        the no-op update on conflict takes the row lock and returns the row."""
        if not keys:
            return {}
        fresh = _counter_values(Counter.empty(now))
        # One order for every transaction, so two attempts never wait on each other in turn.
        ordered = sorted(keys.items(), key=lambda item: (item[0].value, item[1]))
        statement = insert(radar_counters).values(
            [
                {"account_id": account_id, "dimension": d.value, "key": k, **fresh}
                for d, k in ordered
            ]
        )
        rows = await self._db.execute(
            statement.on_conflict_do_update(
                index_elements=["account_id", "dimension", "key"],
                set_={"key": statement.excluded.key},
            ).returning(*radar_counters.c)
        )
        return {Dimension(row._mapping["dimension"]): _counter(row._mapping) for row in rows}

    async def settle_approval(
        self, account_id: str, key: str, cvc_check: str | None, postal_check: str | None
    ) -> None:
        """An approval only resets declines in a row and refreshes the checks: one update,
        no read."""
        await self._db.execute(
            update(radar_counters)
            .where(
                radar_counters.c.account_id == account_id,
                radar_counters.c.dimension == Dimension.CARD.value,
                radar_counters.c.key == key,
            )
            .values(
                declines_in_a_row=0,
                last_cvc_check=func.coalesce(cvc_check, radar_counters.c.last_cvc_check),
                last_postal_check=func.coalesce(postal_check, radar_counters.c.last_postal_check),
            )
        )

    async def read(
        self, account_id: str, keys: Mapping[Dimension, str]
    ) -> dict[Dimension, Counter]:
        if not keys:
            return {}
        wanted = [(account_id, d.value, k) for d, k in keys.items()]
        rows = await self._db.execute(
            select(radar_counters).where(
                tuple_(
                    radar_counters.c.account_id, radar_counters.c.dimension, radar_counters.c.key
                ).in_(wanted)
            )
        )
        return {Dimension(row._mapping["dimension"]): _counter(row._mapping) for row in rows}

    async def save(
        self, account_id: str, keys: Mapping[Dimension, str], counters: Mapping[Dimension, Counter]
    ) -> None:
        rows: Sequence[dict[str, object]] = [
            {"account_id": account_id, "dimension": d.value, "key": keys[d], **_counter_values(c)}
            for d, c in counters.items()
        ]
        if not rows:
            return
        statement = insert(radar_counters).values(list(rows))
        await self._db.execute(
            statement.on_conflict_do_update(
                index_elements=["account_id", "dimension", "key"],
                set_={
                    name: statement.excluded[name]
                    for name in _counter_values(Counter.empty(datetime.now()))
                },
            )
        )


async def count_rules(db: AsyncConnection, account_id: str) -> int:
    return int(
        (
            await db.execute(
                select(func.count())
                .select_from(radar_rules)
                .where(radar_rules.c.account_id == account_id)
            )
        ).scalar_one()
    )
