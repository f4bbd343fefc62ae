"""Events record a hash that changed by its keys that changed in `previous_attributes`.

Until this revision an event's `previous_attributes` held the whole old value of each top-level
field that changed, a hash (`metadata`, `shipping`, `invoice_settings`) included. Since, they
hold what Stripe reports since API version 2015-01-26 (`remit.versioning.previous_attributes`):
a hash that changed by its keys that changed, at any depth, the old value of a key changed or
removed and `null` for a key added; versions before 2015-01-26 show the whole hash again
(`versions/v2015_01_26.py`). The object before the event is rebuilt from the object after it
and those keys, so the renderer reads every stored event that way.

This revision rewrites the events recorded before it into that shape, so that they read as they
did: without it, a key added to a hash would vanish from what old versions show (the whole old
hash laid over the new one by key gives the new one). It says the same change in the shape
remit records now, nothing else: each hash's keys that differ between its old value, as
recorded, and the value in the event's object. Other fields (arrays, scalars, a hash that was
or became null, an object replaced by another of another `id`) are left as they are. The rules
are those of this revision, written out here.

Only events with a hash among their previous attributes are read (the `*.updated` events of a
metadata, shipping, billing details or invoice settings change; a payment intent's whose error
or next action changed). Nothing updates an event once recorded (its deliveries only reference
it, which an UPDATE that keeps its id does not block), so the rows are rewritten in the
migration's own transaction, a page at a time.

All of them in that one transaction, not each page in its own as the backfills of
`remit.storage.batched_backfill` commit: rewriting an event twice is not the same as once (a
key the event left as it was, absent from its changed keys, would read as added), and the
version table tells which events are rewritten only while they all are or none is; the earlier
version, which an operator may go back to after a failed upgrade, reads a rewritten one
wrongly. The cost: every event is read (those with a hash rewritten) in one transaction, which
holds back vacuum everywhere while it lasts (README, Upgrading).

Processes of the earlier version read a changed hash whole: stop them before the upgrade (or
upgrade the core and the worker together), as events they record afterwards would be read as
changed keys, and those this revision rewrote as whole hashes.

The downgrade lays each hash's changed keys back over its value in the event's object: the
whole old hash, which the earlier version records and reads.

Revision ID: 0058_previous_attributes_by_key
Revises: 0057_radar_history
"""

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0058_previous_attributes_by_key"
down_revision = "0057_radar_history"
branch_labels = None
depends_on = None

_PAGE_ROWS = 500

# The free-form maps: a merchant's keys, string values. Every other hash is a message's JSON,
# which holds every field of the message, null when unset.
_MAPS = frozenset({"metadata"})

_WITH_A_HASH = sa.text(
    "SELECT id, data_object, previous_attributes FROM events"
    " WHERE id > :after AND jsonb_typeof(previous_attributes) = 'object'"
    " AND EXISTS (SELECT 1 FROM jsonb_each(previous_attributes) AS p"
    "             WHERE jsonb_typeof(p.value) = 'object')"
    " ORDER BY id LIMIT :rows"
)
_REWRITE = sa.text("UPDATE events SET previous_attributes = :previous WHERE id = :id").bindparams(
    sa.bindparam("previous", type_=JSONB)
)

Json = Any
Rewrite = Callable[[str, Json, Json], Json]


def _other_object(old: dict[str, Json], new: dict[str, Json]) -> bool:
    """A hash that is another API resource than the one after (another `id`): replaced."""
    return isinstance(old.get("object"), str) and old.get("id") != new.get("id")


def _by_key(key: str, old: Json, new: Json) -> bool:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return False
    return key in _MAPS or not _other_object(old, new)


def _changed_keys(before: dict[str, Json], after: dict[str, Json]) -> dict[str, Json]:
    changed: dict[str, Json] = {}
    for key, old in before.items():
        if key not in after:
            changed[key] = old
        elif after[key] != old:
            changed[key] = _changed_keys(old, after[key]) if _by_key(key, old, after[key]) else old
    for key in after:
        if key not in before:
            changed[key] = None
    return changed


def _laid_over(after: dict[str, Json], changed: dict[str, Json], in_map: bool) -> dict[str, Json]:
    before = dict(after)
    for key, old in changed.items():
        if in_map and old is None:
            before.pop(key, None)  # a key the event added to the map
        elif _by_key(key, old, after.get(key)):
            before[key] = _laid_over(after[key], old, key in _MAPS)
        else:
            before[key] = old
    return before


def by_key(key: str, whole: Json, after: Json) -> Json:
    """A field's recorded old value as this revision records it."""
    return _changed_keys(whole, after) if _by_key(key, whole, after) else whole


def whole(key: str, changed: Json, after: Json) -> Json:
    """A field's recorded old value as the earlier version records it."""
    return _laid_over(after, changed, key in _MAPS) if _by_key(key, changed, after) else changed


def _rewrite_events(rewrite: Rewrite) -> None:
    db = op.get_bind()
    after = ""  # every id sorts after it
    while True:
        page = db.execute(_WITH_A_HASH, {"after": after, "rows": _PAGE_ROWS}).all()
        if not page:
            return
        rewritten = []
        for event_id, data_object, previous in page:
            updated = {
                key: rewrite(key, value, data_object.get(key)) for key, value in previous.items()
            }
            if updated != previous:
                rewritten.append({"id": event_id, "previous": updated})
        if rewritten:
            db.execute(_REWRITE, rewritten)
        after = page[-1].id


def upgrade() -> None:
    _rewrite_events(by_key)


def downgrade() -> None:
    _rewrite_events(whole)
