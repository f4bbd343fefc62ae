"""IP list items stored as IPv4-mapped IPv6 addresses hold their IPv4 address instead.

Until this revision an IP value list item kept Python's spelling of the address, and Python
(3.11, 3.12) writes an IPv4-mapped address such as `::ffff:203.0.113.5` as `::ffff:cb00:7105`,
which no payment's IP ever matched. Since, items, payments' `:ip_address:` and their velocity
counters all use `remit.radar.ip_addresses.canonical_ip`: an IPv4-mapped address is its IPv4
address. This revision rewrites the items stored before to that spelling (value and value_key
alike), so they match the payments they were meant to; an item whose list already holds the
IPv4 address is deleted instead of becoming its duplicate.

Few rows, if any: only IP lists' items that begin with `::ffff:`. Which of those are
IPv4-mapped is decided here, with the standard library, as this revision has it.

Revision ID: 0043_canonical_list_ips
Revises: 0042_webhook_slot_jobs
"""

import ipaddress

import sqlalchemy as sa
from alembic import op

revision = "0043_canonical_list_ips"
down_revision = "0042_webhook_slot_jobs"
branch_labels = None
depends_on = None

_MAPPED_LOOKING = sa.text(
    "SELECT i.id, i.value_list_id, i.value FROM radar_value_list_items AS i"
    " JOIN radar_value_lists AS l ON l.id = i.value_list_id"
    " WHERE l.item_type = 'ip_address' AND i.value LIKE '::ffff:%' ORDER BY i.id"
)
_HELD = sa.text(
    "SELECT 1 FROM radar_value_list_items WHERE value_list_id = :list_id AND value_key = :key"
)
_DELETE = sa.text("DELETE FROM radar_value_list_items WHERE id = :id")
_REWRITE = sa.text(
    "UPDATE radar_value_list_items SET value = :value, value_key = :value WHERE id = :id"
)


def _ipv4_of(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return None


def upgrade() -> None:
    db = op.get_bind()
    for item_id, list_id, value in db.execute(_MAPPED_LOOKING).all():
        ipv4 = _ipv4_of(value)
        if ipv4 is None:
            continue
        if db.execute(_HELD, {"list_id": list_id, "key": ipv4}).first() is not None:
            db.execute(_DELETE, {"id": item_id})
        else:
            db.execute(_REWRITE, {"id": item_id, "value": ipv4})


def downgrade() -> None:
    # The IPv4 spelling is what every earlier version stores for an IPv4 address.
    pass
