"""Endpoints whose host is an IPv4 address spelt otherwise than in dotted-decimal form are
disabled, with `disabled_reason` `url_invalid`.

aiohttp refuses to connect to a host made only of digits and dots that is not a dotted-decimal
address (`127.1`, `2130706433`, `0177.0.0.1`, `8.8.8.8.`): "is not a canonical IPv4 address".
Such URLs are refused when an endpoint is saved, but endpoints saved before that stayed
enabled, and every delivery to them failed at once, for three days, until the endpoint was
disabled as `failing`, saying nothing of why. This revision disables them now, saying why, as
`remit webhooks endpoints` shows: `disabled (url_invalid)`. Their owner updates the URL and
enables the endpoint again (one update does both); `remit webhooks redeliver` then sends what
they missed.

The hexadecimal spellings (`0x7f.1`), refused when saving too, are left as they are: aiohttp
hands them to the resolver, which reads them as the address, and they are delivered wherever
that address is allowed. Endpoints disabled already (by their owner, or as failing) keep their
reason, and deleted ones are left alone.

The host is read as aiohttp reads it (yarl's parse, IDNA-normalised: digits written in another
script are those digits), with the rule as this revision has it, written out here.

Processes of the earlier version do not know the reason `url_invalid`: reading such an
endpoint fails there (listing its account's endpoints, or running a job for one of its
deliveries, which is retried until a process of this version runs it). Upgrade the core and
the worker together, or stop those of the earlier version first.

The downgrade gives the endpoints it disabled the reason the earlier version would have given
them in time, `failing`; they stay disabled.

Revision ID: 0051_numeric_host_endpoints
Revises: 0050_webhook_delivery_generation
"""

import ipaddress

import sqlalchemy as sa
import yarl
from alembic import op

revision = "0051_numeric_host_endpoints"
down_revision = "0050_webhook_delivery_generation"
branch_labels = None
depends_on = None

_ENABLED = sa.text(
    "SELECT id, url FROM webhook_endpoints"
    " WHERE status = 'enabled' AND deleted_at IS NULL ORDER BY id"
)
# Only as it was read: an earlier core, still running, may have given the endpoint a URL it
# connects to (or disabled or deleted it) since, in a transaction of its own.
_DISABLE = sa.text(
    "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = 'url_invalid'"
    " WHERE id = :id AND url = :url AND status = 'enabled' AND deleted_at IS NULL"
)
_BACK_TO_FAILING = sa.text(
    "UPDATE webhook_endpoints SET disabled_reason = 'failing' WHERE disabled_reason = 'url_invalid'"
)


def never_connected_to(url: str) -> bool:
    """Whether aiohttp refuses to connect to the URL's host: digits and dots only, and not a
    dotted-decimal IPv4 address."""
    try:
        host = yarl.URL(url).raw_host
    except ValueError:
        return False
    if not host:
        return False
    digits = host.replace(".", "")
    if not (digits.isascii() and digits.isdigit()):
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def upgrade() -> None:
    db = op.get_bind()
    doomed = [
        {"id": row.id, "url": row.url}
        for row in db.execute(_ENABLED)
        if never_connected_to(row.url)
    ]
    if doomed:
        db.execute(_DISABLE, doomed)


def downgrade() -> None:
    op.get_bind().execute(_BACK_TO_FAILING)
