"""Radar rules and IP list items with an IPv6 zone (`fe80::1%eth0`) say what became of them.

Since addresses with a zone are refused wherever Radar takes a client's address
(`remit.radar.ip_addresses`), a rule saved before with such a literal no longer parses: it is
invalid and never runs, and an IP list item with a zone matches no payment (a payment's IP
spelt with one is no IP). Nothing recorded that either had happened, or when.

- Such a rule is disabled with a recorded reason: `radar_rules.disabled_reason` (new, NULL for
  every other rule), which the rule's `invalid_reason` shows wherever the rule is shown (REST,
  gRPC, `remit radar rules`). Its predicate, action and position are left as they are; a
  change of its predicate clears the reason. Only rules that do not parse now are disabled, so
  no rule that runs stops running.
- Such an item is removed from its IP list, and its removal recorded in the account's Radar
  history (`remit radar history`) as a deletion by "remit", under an id this revision alone
  makes (`rchg_zone_` and the item's id), the item as it was (value, list, when and by whom it
  was added) in `before`.
- One WARNING line per account says what was disabled and removed.

Which literals have a zone is decided here, with the standard library; whether a rule parses,
by this version's parser. Few rows, if any: only predicates and IP list items holding a `%`.

The downgrade puts the removed items back as they were and deletes the history records of
their removal; it drops the column, leaving the rules as they are (invalid, and shown so).

Revision ID: 0069_radar_zoned_addresses
Revises: 0068_webhook_pending_due
"""

import ipaddress
import json
import logging
import re
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from remit.radar.rules import RuleSyntaxError, parse_predicate

revision = "0069_radar_zoned_addresses"
down_revision = "0068_webhook_pending_due"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_HISTORY_PREFIX = "rchg_zone_"
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")

_RULES_WITH_PERCENT = sa.text(
    "SELECT id, account_id, predicate FROM radar_rules WHERE predicate LIKE '%\\%%' ORDER BY id"
)
_DISABLE = sa.text("UPDATE radar_rules SET disabled_reason = :reason WHERE id = :id")
_ITEMS_WITH_PERCENT = sa.text(
    "SELECT i.id, i.account_id, i.value_list_id, i.value, i.created_by, i.created_at, l.alias"
    " FROM radar_value_list_items AS i JOIN radar_value_lists AS l ON l.id = i.value_list_id"
    " WHERE l.item_type = 'ip_address' AND i.value LIKE '%\\%%' ORDER BY i.id"
)
_REMOVE = sa.text("DELETE FROM radar_value_list_items WHERE id = :id")
_RECORD_REMOVAL = sa.text(
    "INSERT INTO radar_changes (id, account_id, object_type, object_id, value_list_id, action,"
    " before, changed_by, created_at)"
    " VALUES (:history_id, :account_id, 'radar.value_list_item', :id, :value_list_id,"
    " 'deleted', CAST(:before AS jsonb), 'remit', now())"
)
_REMOVALS = sa.text(
    "SELECT c.account_id, c.object_id, c.value_list_id, c.before, l.item_type"
    " FROM radar_changes AS c JOIN radar_value_lists AS l ON l.id = c.value_list_id"
    " WHERE c.id LIKE :prefix ORDER BY c.id"
)
_PUT_BACK = sa.text(
    "INSERT INTO radar_value_list_items (id, account_id, value_list_id, value, value_key,"
    " created_by, created_at)"
    " VALUES (:id, :account_id, :value_list_id, :value, :value_key, :created_by,"
    " CAST(:created_at AS timestamptz))"
    " ON CONFLICT DO NOTHING"
)
_FORGET_REMOVALS = sa.text("DELETE FROM radar_changes WHERE id LIKE :prefix")


def _zoned(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None


def _zoned_literals(predicate: str) -> list[str]:
    literals = (re.sub(r"\\(.)", r"\1", quoted) for quoted in _QUOTED.findall(predicate))
    return [literal for literal in literals if _zoned(literal)]


def _parses(predicate: str) -> bool:
    try:
        parse_predicate(predicate)
    except RuleSyntaxError:
        return False
    return True


def disabled_reason(literals: list[str]) -> str:
    named = ", ".join(repr(literal) for literal in literals)
    return (
        f"Disabled by remit's upgrade (core migration 0069): the rule compares :ip_address: "
        f"with {named}, an IPv6 address with a zone, which names a network interface of the "
        "machine that saw an address, not a client. Addresses with a zone are refused, so the "
        "rule stopped running when they were; change its predicate to run it again, or "
        "delete it."
    )


def upgrade() -> None:
    op.add_column("radar_rules", sa.Column("disabled_reason", sa.Text, nullable=True))
    db = op.get_bind()
    rules: dict[str, list[str]] = defaultdict(list)
    items: dict[str, list[str]] = defaultdict(list)
    for rule_id, account_id, predicate in db.execute(_RULES_WITH_PERCENT).all():
        literals = _zoned_literals(predicate)
        if not literals or _parses(predicate):
            continue
        db.execute(_DISABLE, {"id": rule_id, "reason": disabled_reason(literals)})
        rules[account_id].append(rule_id)
    for row in db.execute(_ITEMS_WITH_PERCENT).all():
        if not _zoned(row.value):
            continue
        before = {
            "value": row.value,
            "value_list": row.value_list_id,
            "created_by": row.created_by,
            "created_at": row.created_at.isoformat(),
        }
        db.execute(_REMOVE, {"id": row.id})
        db.execute(
            _RECORD_REMOVAL,
            {
                "history_id": _HISTORY_PREFIX + row.id,
                "account_id": row.account_id,
                "id": row.id,
                "value_list_id": row.value_list_id,
                "before": json.dumps(before, sort_keys=True),
            },
        )
        items[row.account_id].append(f"{row.id} ({row.value!r} of @{row.alias})")
    for account_id in sorted(set(rules) | set(items)):
        log.warning(
            "account %s: disabled %d Radar rules comparing :ip_address: with an IPv6 address "
            "with a zone, which never ran since such addresses were refused (%s; each shows "
            "why as its invalid_reason); removed %d IP list items with a zone, which matched "
            "no payment (%s; each recorded in the account's Radar history)",
            account_id,
            len(rules[account_id]),
            ", ".join(rules[account_id]) or "none",
            len(items[account_id]),
            ", ".join(items[account_id]) or "none",
        )


def downgrade() -> None:
    db = op.get_bind()
    prefix = {"prefix": _HISTORY_PREFIX + "%"}
    for row in db.execute(_REMOVALS, prefix).all():
        before = row.before if isinstance(row.before, dict) else json.loads(row.before)
        value = str(before["value"])
        # As `remit.radar.repository.value_key` keys it: IP lists are not case-sensitive.
        key = value if row.item_type == "case_sensitive_string" else value.casefold()
        db.execute(
            _PUT_BACK,
            {
                "id": row.object_id,
                "account_id": row.account_id,
                "value_list_id": row.value_list_id,
                "value": value,
                "value_key": key,
                "created_by": before["created_by"],
                "created_at": before["created_at"],
            },
        )
    db.execute(_FORGET_REMOVALS, prefix)
    op.drop_column("radar_rules", "disabled_reason")
