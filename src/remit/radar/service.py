"""Radar's use cases: rules and value lists, and the dry-run evaluator. One transaction each.

A rule is parsed, type-checked and its @lists resolved when it is saved: a payment never meets
a rule that cannot run (one stored before a check existed that fails it is invalid, never runs,
and is listed with its `invalid_reason`: remit.radar.validity). A value list that a rule refers
to cannot be deleted: saving a rule locks the lists it names FOR SHARE, and deleting a list
locks it FOR UPDATE before reading the rules, so the two never both succeed.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from remit.core.clock import Clock, SystemClock
from remit.core.errors import ErrorKind, RemitError, already_exists, invalid, not_found
from remit.core.ids import has_prefix, new_id
from remit.payments.keyed import Done, Keyed, Replay, run_keyed, value_of
from remit.radar import history
from remit.radar.decided import rule_as_decided, rules_as_decided
from remit.radar.domain import (
    Decision,
    ItemType,
    Rule,
    RuleAction,
    ValueList,
    ValueListItem,
    decide,
)
from remit.radar.gate import active_rules, runnable
from remit.radar.history import NOBODY_NAMED, Actor, Change, ChangeAction
from remit.radar.ip_addresses import ZONE_REFUSED, canonical_ip, zoned
from remit.radar.listed import listed_rules_by_id, lists_of, rules_as_listed
from remit.radar.model import Weights, load_weights, score
from remit.radar.repository import RuleRepository, ValueListRepository, value_key
from remit.radar.rules import ParsedPredicate, RuleSyntaxError, parse_predicate
from remit.radar.tables import radar_changes, radar_value_list_items, radar_value_lists
from remit.radar.validity import list_problem
from remit.storage.pagination import ANY_TIME, CreatedBounds, Cursor, cursor_for

MAX_RULES: Final = 200
MAX_LIST_LIMIT: Final = 100
LIST_ITEMS_EMBEDDED: Final = 10
MAX_VALUE_LENGTH: Final = 800
_ALIAS = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_BIN = re.compile(r"^\d{6,8}$")
# Item types a new list cannot have. A card_bin list could only be tested against the card's
# BIN, and none reaches the core: the vault shares a card's brand, last four, expiry,
# fingerprint, funding and country (vault.v1.CardDetails), never its leading digits. Lists made
# before stay readable and deletable.
UNSUPPORTED_ITEM_TYPES: Final = {
    ItemType.CARD_BIN: "Value lists of card BINs are not supported: remit's core never sees a "
    "card's number or BIN, so no rule could test a payment against one.",
}


class RadarError(RemitError):
    """Root of the errors the Radar service raises."""


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid("limit must be between 1 and 100.", "limit")


def normalised_value(item_type: ItemType, value: str) -> str:
    """The value as stored, or INVALID_ARGUMENT naming why it does not fit the list."""
    text = value.strip()
    if not text or len(text) > MAX_VALUE_LENGTH:
        raise invalid(f"A value is 1 to {MAX_VALUE_LENGTH} characters.", "value")
    match item_type:
        case ItemType.COUNTRY:
            text = text.upper()
            if not _COUNTRY.match(text):
                raise invalid("A country is a two-letter ISO code such as 'US'.", "value")
        case ItemType.CARD_BIN:
            if not _BIN.match(text):
                raise invalid("A card BIN is 6 to 8 digits.", "value")
        case ItemType.EMAIL:
            if "@" not in text.strip("@"):
                raise invalid(f"{text!r} is not an email address.", "value")
        case ItemType.IP_ADDRESS:
            address = canonical_ip(text)
            if address is None:
                why = f"; {ZONE_REFUSED}" if zoned(text) else ""
                raise invalid(f"{text!r} is not an IP address{why}.", "value")
            text = address
        case ItemType.CUSTOMER_ID:
            if not has_prefix(text, "cus"):
                raise invalid("A customer id starts with cus_.", "value")
        case ItemType.CARD_FINGERPRINT | ItemType.STRING | ItemType.CASE_SENSITIVE_STRING:
            pass
    return text


def _filter_key(item_type: ItemType, value: str) -> str | None:
    """A `value=` or `contains=` filter as a list of `item_type` would hold the value: its
    value_key (so `::ffff:203.0.113.5` finds 203.0.113.5 and `us` finds US), or None if no
    item of such a list can be that value."""
    try:
        return value_key(normalised_value(item_type, value), item_type)
    except RemitError:
        return None


class RadarService:
    def __init__(
        self, engine: AsyncEngine, weights: Weights | None = None, clock: Clock | None = None
    ) -> None:
        self._engine = engine
        self._weights = weights or load_weights()
        self._clock = clock or SystemClock()

    def _now(self) -> datetime:
        return self._clock.now()

    # --- rules -----------------------------------------------------------------------

    async def _check_lists(
        self, db: AsyncConnection, account_id: str, parsed: ParsedPredicate
    ) -> None:
        """The lists the rule names exist and hold what it tests against them. Called with the
        account's rules locked; locks those lists FOR SHARE until the rule is saved, so a delete
        of one (FOR UPDATE) cannot commit in between: it waits, then sees the rule and refuses,
        or it committed first and the list is missing here."""
        item_types = await ValueListRepository(db).lock_item_types(account_id, parsed.lists)
        problem = list_problem(parsed, item_types)
        if problem is not None:
            raise invalid(problem, "predicate", code="rule_invalid")

    async def create_rule(
        self,
        account_id: str,
        action: RuleAction,
        predicate: str,
        position: int | None = None,
        *,
        actor: Actor = NOBODY_NAMED,
    ) -> Rule:
        return value_of(
            await self.create_rule_once(account_id, None, action, predicate, position, actor=actor)
        )

    async def create_rule_once(
        self,
        account_id: str,
        keyed: Keyed[Rule] | None,
        action: RuleAction,
        predicate: str,
        position: int | None = None,
        *,
        actor: Actor = NOBODY_NAMED,
    ) -> Done[Rule] | Replay:
        """A new rule; under a client key, one rule however often it is retried (a second copy
        would shift every later rule down a place)."""

        async def insert(db: AsyncConnection) -> Rule:
            parsed = _parsed(predicate)
            repo = RuleRepository(db)
            rules = await repo.lock_account_rules(account_id)
            await self._check_lists(db, account_id, parsed)
            if len(rules) >= MAX_RULES:
                raise invalid(f"An account can have at most {MAX_RULES} rules.", "predicate")
            at = len(rules) if position is None else position
            if not 0 <= at <= len(rules):
                raise invalid(f"position must be between 0 and {len(rules)}.", "position")
            for rule in rules[at:]:
                await repo.save(replace(rule, position=rule.position + 1))
            rule = Rule(
                id=new_id("rule"),
                account_id=account_id,
                action=action,
                predicate=parsed.text,
                position=at,
                created_at=self._now(),
            )
            await repo.insert(rule)
            await self._record_rule(db, actor, ChangeAction.CREATED, None, rule)
            return rule

        return await run_keyed(self._engine, keyed, self._now(), insert)

    async def get_rule(
        self, account_id: str, rule_id: str, *, decided_charge: str | None = None
    ) -> Rule:
        """The rule as it is now; with `decided_charge`, as it was when it decided that
        charge (its action, predicate and version then: remit.radar.decided). A rule deleted
        since is not found either way."""
        async with self._engine.begin() as db:
            rule = await RuleRepository(db).get(account_id, rule_id)
            if rule is None:
                raise not_found("rule", rule_id)
            listed = (await rules_as_listed(db, account_id, [rule]))[0]
            if decided_charge is None:
                return listed
            return await rule_as_decided(db, listed, decided_charge)

    async def get_rules(
        self,
        account_id: str,
        rule_ids: Sequence[str],
        decided: Sequence[tuple[str, str]] = (),
    ) -> tuple[list[Rule], list[tuple[str, Rule]]]:
        """The account's rules among `rule_ids` as they are now; and for each (charge id, rule
        id) of `decided`, the charge's id and the rule as it decided that charge
        (remit.radar.decided). Each in the order asked, each once; a rule of no id (one deleted
        since) is left out. The rules and the charges' verdicts are read a query each, for a
        page of charges at once."""
        if len(rule_ids) + len(decided) > MAX_LIST_LIMIT:
            raise invalid(f"At most {MAX_LIST_LIMIT} rules can be asked at once.", "ids")
        async with self._engine.begin() as db:
            wanted = [*rule_ids, *(rule_id for _, rule_id in decided)]
            rules = await listed_rules_by_id(db, account_id, wanted)
            then = await rules_as_decided(db, account_id, rules, decided)
        return (
            [rules[rule_id] for rule_id in dict.fromkeys(rule_ids) if rule_id in rules],
            [(pair[0], then[pair]) for pair in dict.fromkeys(decided) if pair in then],
        )

    async def list_rules(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[Rule], bool]:
        """Rules by position; cursors are rule ids."""
        _check_limit(limit)
        # Refused before the cursors are looked up, as every other list refuses them.
        if starting_after is not None and ending_before is not None:
            raise invalid("starting_after and ending_before cannot be used together.")
        async with self._engine.begin() as db:
            rules = await rules_as_listed(
                db, account_id, await RuleRepository(db).in_order(account_id)
            )
        ids = [rule.id for rule in rules]
        for cursor, param in ((starting_after, "starting_after"), (ending_before, "ending_before")):
            if cursor is not None and cursor not in ids:
                raise not_found("rule", cursor, param=param)
        if starting_after is not None:
            rest = rules[ids.index(starting_after) + 1 :]
            return rest[:limit], len(rest) > limit
        if ending_before is not None:
            before = rules[: ids.index(ending_before)]
            return before[-limit:], len(before) > limit
        return rules[:limit], len(rules) > limit

    async def update_rule(
        self,
        account_id: str,
        rule_id: str,
        *,
        action: RuleAction | None = None,
        predicate: str | None = None,
        position: int | None = None,
        actor: Actor = NOBODY_NAMED,
    ) -> Rule:
        return value_of(
            await self.update_rule_once(
                account_id,
                None,
                rule_id,
                action=action,
                predicate=predicate,
                position=position,
                actor=actor,
            )
        )

    async def update_rule_once(
        self,
        account_id: str,
        keyed: Keyed[Rule] | None,
        rule_id: str,
        *,
        action: RuleAction | None = None,
        predicate: str | None = None,
        position: int | None = None,
        actor: Actor = NOBODY_NAMED,
    ) -> Done[Rule] | Replay:
        async def change(db: AsyncConnection) -> Rule:
            repo = RuleRepository(db)
            rules = await repo.lock_account_rules(account_id)
            current = next((rule for rule in rules if rule.id == rule_id), None)
            if current is None:
                raise not_found("rule", rule_id)
            updated = current
            if predicate is not None:
                parsed = _parsed(predicate)
                await self._check_lists(db, account_id, parsed)
                # A predicate saved now runs: whatever disabled the rule before is gone.
                updated = replace(updated, predicate=parsed.text, disabled_reason=None)
            if action is not None:
                updated = replace(updated, action=action)
            if (updated.action, updated.predicate) != (current.action, current.predicate):
                # What the rule does changed: a new version (see remit.radar.history).
                updated = replace(updated, version=(current.version or 0) + 1)
            order = [rule for rule in rules if rule.id != rule_id]
            if position is not None and not 0 <= position < len(rules):
                raise invalid(f"position must be between 0 and {len(rules) - 1}.", "position")
            order.insert(current.position if position is None else position, updated)
            for index, rule in enumerate(order):
                if rule is updated or rule.position != index:
                    await repo.save(replace(rule, position=index))
            saved = replace(updated, position=order.index(updated))
            if history.rule_state(saved) != history.rule_state(current):
                await self._record_rule(db, actor, ChangeAction.UPDATED, current, saved)
            return saved

        return await run_keyed(self._engine, keyed, self._now(), change)

    async def delete_rule(
        self, account_id: str, rule_id: str, *, actor: Actor = NOBODY_NAMED
    ) -> None:
        async with self._engine.begin() as db:
            repo = RuleRepository(db)
            rules = await repo.lock_account_rules(account_id)
            deleted = next((rule for rule in rules if rule.id == rule_id), None)
            if deleted is None:
                raise not_found("rule", rule_id)
            await repo.delete(account_id, rule_id)
            await self._record_rule(db, actor, ChangeAction.DELETED, deleted, None)
            remaining = [rule for rule in rules if rule.id != rule_id]
            for index, rule in enumerate(remaining):
                if rule.position != index:
                    await repo.save(replace(rule, position=index))

    # --- value lists -----------------------------------------------------------------

    async def create_value_list(
        self,
        account_id: str,
        *,
        alias: str,
        name: str,
        item_type: ItemType = ItemType.STRING,
        metadata: Mapping[str, str] | None = None,
        actor: Actor = NOBODY_NAMED,
    ) -> ValueList:
        return value_of(
            await self.create_value_list_once(
                account_id,
                None,
                alias=alias,
                name=name,
                item_type=item_type,
                metadata=metadata,
                actor=actor,
            )
        )

    async def create_value_list_once(
        self,
        account_id: str,
        keyed: Keyed[ValueList] | None,
        *,
        alias: str,
        name: str,
        item_type: ItemType = ItemType.STRING,
        metadata: Mapping[str, str] | None = None,
        actor: Actor = NOBODY_NAMED,
    ) -> Done[ValueList] | Replay:
        """A new value list; a retry under its key answers with it instead of refusing the
        alias the first attempt already took."""
        if not _ALIAS.match(alias):
            raise invalid("An alias is 1 to 100 letters, digits, underscores or hyphens.", "alias")
        if not name.strip():
            raise invalid("A value list needs a name.", "name")
        if item_type in UNSUPPORTED_ITEM_TYPES:
            raise invalid(UNSUPPORTED_ITEM_TYPES[item_type], "item_type")

        async def insert(db: AsyncConnection) -> ValueList:
            value_list = ValueList(
                id=new_id("vl"),
                account_id=account_id,
                alias=alias,
                name=name.strip(),
                item_type=item_type,
                created_at=self._now(),
                created_by=actor.changed_by,
                metadata=dict(metadata or {}),
            )
            if not await ValueListRepository(db).insert(value_list):
                # Taken already, or by a concurrent create that committed first: the same
                # refusal either way (the unique constraint on the account and alias decides).
                raise already_exists(
                    f"A value list with the alias {alias!r} already exists.", "alias"
                )
            await history.record(
                db,
                account_id=account_id,
                actor=actor,
                object_type=history.VALUE_LIST,
                object_id=value_list.id,
                value_list_id=value_list.id,
                action=ChangeAction.CREATED,
                at=value_list.created_at,
                after=history.list_state(value_list),
            )
            return value_list

        return await run_keyed(self._engine, keyed, self._now(), insert)

    async def get_value_list(
        self, account_id: str, list_id: str
    ) -> tuple[ValueList, list[ValueListItem], bool]:
        async with self._engine.begin() as db:
            repo = ValueListRepository(db)
            value_list = await repo.get(account_id, list_id)
            if value_list is None:
                raise not_found("radar.value_list", list_id)
            items, more = await repo.first_items(list_id, LIST_ITEMS_EMBEDDED)
        return value_list, items, more

    async def list_value_lists(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        alias: str | None = None,
        contains: str | None = None,
    ) -> tuple[list[tuple[ValueList, list[ValueListItem], bool]], bool]:
        _check_limit(limit)
        async with self._engine.begin() as db:
            after, before = await _cursors(
                db, radar_value_lists, account_id, "radar.value_list", starting_after, ending_before
            )
            repo = ValueListRepository(db)
            lists, more = await repo.page(
                account_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                alias=alias,
                contains=None if contains is None else _filter_keys(contains),
            )
            return [(vl, *await repo.first_items(vl.id, LIST_ITEMS_EMBEDDED)) for vl in lists], more

    async def delete_value_list(
        self, account_id: str, list_id: str, *, actor: Actor = NOBODY_NAMED
    ) -> None:
        async with self._engine.begin() as db:
            repo = ValueListRepository(db)
            # Locked before the rules are read: a rule being saved that names the list holds it
            # FOR SHARE, so this waits for it and then reads its rule (each statement reads
            # what had committed when it began).
            value_list = await repo.lock(account_id, list_id)
            if value_list is None:
                raise not_found("radar.value_list", list_id)
            rules = await RuleRepository(db).in_order(account_id)
            users = [r for r in rules if value_list.alias in lists_of(r.predicate)]
            if users:
                raise RadarError(
                    message=f"The value list @{value_list.alias} is used by rule {users[0].id}; "
                    "remove the rule first.",
                    kind=ErrorKind.FAILED_PRECONDITION,
                    code="value_list_in_use",
                )
            items = await repo.delete(account_id, list_id)
            await history.record(
                db,
                account_id=account_id,
                actor=actor,
                object_type=history.VALUE_LIST,
                object_id=list_id,
                value_list_id=list_id,
                action=ChangeAction.DELETED,
                at=self._now(),
                # Its items went with it, recorded here rather than one by one.
                before={**history.list_state(value_list), "items": items},
            )

    async def add_item(
        self, account_id: str, list_id: str, value: str, *, actor: Actor = NOBODY_NAMED
    ) -> ValueListItem:
        return value_of(await self.add_item_once(account_id, None, list_id, value, actor=actor))

    async def add_item_once(
        self,
        account_id: str,
        keyed: Keyed[ValueListItem] | None,
        list_id: str,
        value: str,
        *,
        actor: Actor = NOBODY_NAMED,
    ) -> Done[ValueListItem] | Replay:
        """A value added to a list; a retry under its key answers with the item instead of
        refusing the value the first attempt already added."""

        async def insert(db: AsyncConnection) -> ValueListItem:
            repo = ValueListRepository(db)
            value_list = await repo.get(account_id, list_id)
            if value_list is None:
                raise not_found("radar.value_list", list_id, param="value_list")
            text = normalised_value(value_list.item_type, value)
            item = ValueListItem(
                id=new_id("vli"),
                account_id=account_id,
                value_list_id=list_id,
                value=text,
                created_at=self._now(),
                created_by=actor.changed_by,
            )
            if not await repo.insert_item(item, value_list.item_type):
                # Held already, or added by a concurrent request that committed first: the
                # same refusal either way (the unique index decides, core migration 0056).
                raise already_exists(f"{text!r} is already in @{value_list.alias}.", "value")
            await self._record_item(db, actor, ChangeAction.CREATED, item)
            return item

        return await run_keyed(self._engine, keyed, self._now(), insert)

    async def remove_item(
        self, account_id: str, item_id: str, *, actor: Actor = NOBODY_NAMED
    ) -> None:
        async with self._engine.begin() as db:
            repo = ValueListRepository(db)
            item = await repo.get_item(account_id, item_id)
            # A remove of the item that committed meanwhile removed it, and is the one recorded.
            if item is None or not await repo.delete_item(account_id, item_id):
                raise not_found("radar.value_list_item", item_id)
            await self._record_item(db, actor, ChangeAction.DELETED, item)

    async def list_items(
        self,
        account_id: str,
        list_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
        created: CreatedBounds = ANY_TIME,
        value: str | None = None,
    ) -> tuple[list[ValueListItem], bool]:
        _check_limit(limit)
        async with self._engine.begin() as db:
            repo = ValueListRepository(db)
            value_list = await repo.get(account_id, list_id)
            if value_list is None:
                raise not_found("radar.value_list", list_id, param="value_list")
            after, before = await _cursors(
                db,
                radar_value_list_items,
                account_id,
                "radar.value_list_item",
                starting_after,
                ending_before,
            )
            key = None if value is None else _filter_key(value_list.item_type, value)
            if value is not None and key is None:
                return [], False
            return await repo.item_page(
                account_id,
                list_id,
                limit=limit,
                starting_after=after,
                ending_before=before,
                created=created,
                key=key,
            )

    # --- history -----------------------------------------------------------------------

    async def _record_rule(
        self,
        db: AsyncConnection,
        actor: Actor,
        action: ChangeAction,
        before: Rule | None,
        after: Rule | None,
    ) -> None:
        await history.record_rule(db, actor, action, before, after, at=self._now())

    async def _record_item(
        self, db: AsyncConnection, actor: Actor, action: ChangeAction, item: ValueListItem
    ) -> None:
        state = history.item_state(item)
        await history.record(
            db,
            account_id=item.account_id,
            actor=actor,
            object_type=history.VALUE_LIST_ITEM,
            object_id=item.id,
            value_list_id=item.value_list_id,
            action=action,
            at=self._now(),
            before=state if action is ChangeAction.DELETED else None,
            after=state if action is ChangeAction.CREATED else None,
        )

    async def list_changes(
        self,
        account_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        object_id: str | None = None,
    ) -> tuple[list[Change], bool]:
        """Radar's history for the account, newest first (remit.radar.history); `object_id`:
        only a rule's, a list's (with its items') or an item's."""
        _check_limit(limit)
        async with self._engine.begin() as db:
            after, _ = await _cursors(
                db, radar_changes, account_id, "radar change", starting_after, None
            )
            return await history.page(
                db, account_id, limit=limit, starting_after=after, object_id=object_id
            )

    # --- dry run -----------------------------------------------------------------------

    async def evaluate(
        self, account_id: str, signals: dict[str, object], hint: str | None = None
    ) -> Decision:
        """What Radar would decide for these signals under the account's rules, now."""
        scored = score(signals, self._weights, hint)
        signals = {
            **signals,
            "risk_score": scored.risk_score,
            "risk_level": scored.risk_level.value,
        }
        async with self._engine.begin() as db:
            rules = active_rules(await RuleRepository(db).in_order(account_id))
            aliases = {alias for rule in rules for alias in rule.parsed.lists}
            lists = await ValueListRepository(db).matching(
                account_id, aliases, [v for v in signals.values() if isinstance(v, str)]
            )
        return decide(
            scored,
            signals,
            runnable(rules, lists.item_types),
            lists.values,
            always_block=hint == "fraudulent",
            can_authenticate=signals.get("is_off_session") is not True,
        )


def _parsed(predicate: str) -> ParsedPredicate:
    try:
        return parse_predicate(predicate)
    except RuleSyntaxError as error:
        raise invalid(f"Invalid rule: {error}", "predicate", code="rule_invalid") from None


def _filter_keys(value: str) -> dict[ItemType, str]:
    """`contains=value` for each item type a list could hold it as."""
    keys = {item_type: _filter_key(item_type, value) for item_type in ItemType}
    return {item_type: key for item_type, key in keys.items() if key is not None}


async def _cursors(
    db: AsyncConnection,
    table: Table,
    account_id: str,
    kind: str,
    starting_after: str | None,
    ending_before: str | None,
) -> tuple[Cursor | None, Cursor | None]:
    if starting_after is not None and ending_before is not None:
        raise invalid("starting_after and ending_before cannot be used together.")
    found: list[Cursor | None] = []
    for object_id, param in ((starting_after, "starting_after"), (ending_before, "ending_before")):
        if object_id is None:
            found.append(None)
            continue
        cursor = await cursor_for(db, table, account_id, object_id)
        if cursor is None:
            raise not_found(kind, object_id, param=param)
        found.append(cursor)
    return found[0], found[1]
