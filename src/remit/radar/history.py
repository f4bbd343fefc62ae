"""Radar's history: every change to a rule, a value list or a value list item, and who asked.

The use cases of `remit.radar.service` record each change in its own transaction: a change that
is refused leaves no record, and one replayed under its idempotency key is not recorded again.
A record says what changed (the object as it was before and after, as the listing shows it),
when, and who asked: the key_ id of the API key the change was made with (the REST facade and
`remit radar` name it in the call's metadata), with the REST request's id, or "remit" when the
caller named no key (remit's own callers). Never a key's secret: no secret reaches the core
with a call.

A rule's version counts the changes of its action or predicate, which decide what it does; a
change of its position alone records the rule at the same version. A charge's Radar verdict
names the version that decided it, beside its text (remit.radar.gate), so the history says who
wrote the rule that decided a payment. Moving other rules up or down a place, as inserting or
deleting one does, is not recorded for each: the record of the rule inserted or deleted says
where.

Deleting a list deletes its items with it: one record, of the list, which counts them.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from sqlalchemy import ColumnElement, or_
from sqlalchemy.ext.asyncio import AsyncConnection

from remit.core.ids import new_id
from remit.radar.domain import Rule, ValueList, ValueListItem
from remit.radar.tables import radar_changes
from remit.storage.pagination import Cursor, fetch_page

RULE: Final = "rule"
VALUE_LIST: Final = "radar.value_list"
VALUE_LIST_ITEM: Final = "radar.value_list_item"
# Who made a change no API key was named for: remit itself (an internal caller, a tool).
REMIT: Final = "remit"


class ChangeAction(Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the key_ id of their API key and the REST request's id, when
    known."""

    key_id: str | None = None
    request_id: str | None = None

    @property
    def changed_by(self) -> str:
        return self.key_id or REMIT


NOBODY_NAMED: Final = Actor()


@dataclass(frozen=True)
class Change:
    id: str
    account_id: str
    object_type: str
    object_id: str
    action: ChangeAction
    created_at: datetime
    changed_by: str
    request_id: str | None = None
    value_list_id: str | None = None
    rule_version: int | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None

    def json_of(self, state: Mapping[str, Any] | None) -> str | None:
        """A state as the listing shows it: compact JSON, keys in order."""
        return None if state is None else json.dumps(state, sort_keys=True, separators=(",", ":"))


def rule_state(rule: Rule) -> dict[str, Any]:
    return {"action": rule.action.value, "predicate": rule.predicate, "position": rule.position}


def list_state(value_list: ValueList) -> dict[str, Any]:
    return {
        "alias": value_list.alias,
        "name": value_list.name,
        "item_type": value_list.item_type.value,
        "metadata": dict(value_list.metadata),
    }


def item_state(item: ValueListItem) -> dict[str, Any]:
    return {"value": item.value, "value_list": item.value_list_id}


async def record(
    db: AsyncConnection,
    *,
    account_id: str,
    actor: Actor,
    object_type: str,
    object_id: str,
    action: ChangeAction,
    at: datetime,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    rule_version: int | None = None,
    value_list_id: str | None = None,
) -> None:
    """Record one change, in the caller's transaction (the change's own)."""
    await db.execute(
        radar_changes.insert().values(
            id=new_id("rchg"),
            account_id=account_id,
            object_type=object_type,
            object_id=object_id,
            value_list_id=value_list_id,
            action=action.value,
            rule_version=rule_version,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            changed_by=actor.changed_by,
            request_id=actor.request_id,
            created_at=at,
        )
    )


async def record_rule(
    db: AsyncConnection,
    actor: Actor,
    action: ChangeAction,
    before: Rule | None,
    after: Rule | None,
    *,
    at: datetime,
) -> None:
    """Record a rule's creation (no `before`), change or deletion (no `after`), at the version
    it then has."""
    rule = after or before
    assert rule is not None
    await record(
        db,
        account_id=rule.account_id,
        actor=actor,
        object_type=RULE,
        object_id=rule.id,
        action=action,
        at=at,
        before=None if before is None else rule_state(before),
        after=None if after is None else rule_state(after),
        rule_version=rule.version,
    )


def _change(row: Any) -> Change:
    m = row._mapping
    return Change(
        id=m["id"],
        account_id=m["account_id"],
        object_type=m["object_type"],
        object_id=m["object_id"],
        action=ChangeAction(m["action"]),
        created_at=m["created_at"],
        changed_by=m["changed_by"],
        request_id=m["request_id"],
        value_list_id=m["value_list_id"],
        rule_version=m["rule_version"],
        before=m["before"],
        after=m["after"],
    )


async def page(
    db: AsyncConnection,
    account_id: str,
    *,
    limit: int,
    starting_after: Cursor | None = None,
    object_id: str | None = None,
) -> tuple[list[Change], bool]:
    """The account's changes, newest first; `object_id`: only that object's (a value list's
    include its items')."""
    conditions: list[ColumnElement[bool]] = [radar_changes.c.account_id == account_id]
    if object_id is not None:
        conditions.append(
            or_(radar_changes.c.object_id == object_id, radar_changes.c.value_list_id == object_id)
        )
    rows, more = await fetch_page(
        db, radar_changes, conditions, limit=limit, starting_after=starting_after
    )
    return [_change(row) for row in rows], more
