"""A webhook delivery's attempts each have a number of their own.

Until this revision attempts could share one: the worker numbered its attempt by its job (the
delivery's count of the worker's own attempts, started again at 1 when a redelivery started the
delivery over) and a resend by the count of every attempt stored, so a resend between two of the
worker's attempts, or any attempt after a redelivery, took a number an attempt already had; and
a worker's attempt and a resend recorded at the same moment could each count the other's
missing. Since this revision every attempt is numbered as it is stored, after every attempt of
its delivery stored before, under the delivery's row lock (`DeliveryRepository.insert_attempt`),
and the unique index ux_webhook_delivery_attempts_number on (delivery_id, attempt_number)
refuses a number taken twice.

Attempts stored before keep their numbers, except those of a delivery where two share one: all
of that delivery's attempts are numbered again 1, 2, 3, ... in the order they were made
(attempted_at, then the number they had, then id), the order the attempts list shows them in.
Nothing refers to an attempt by its number; only what a client read of the attempts before
differs. How many deliveries were numbered again is logged.

The index replaces ix_webhook_delivery_attempts_delivery_id, whose column it starts with, and is
built and the old one dropped without blocking writes (`remit.storage.online_index`). A process
of the previous version, still running during the upgrade, may store a shared number while the
index is being built: the build then fails, leaving an invalid index, which is dropped; the
attempts are numbered again and the index built again, a few times at most. Once it is built,
an attempt such a process numbers as before and that takes a number already stored is refused:
a worker's job fails that run and is retried (the attempt is made again), a resend is answered
with an error (README, "Upgrading past core migration 0076").

Revision ID: 0076_webhook_attempt_numbers
Revises: 0075_webhook_pending_by_endpoint
"""

import logging

from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from remit.storage.migration_stops import MigrationStoppedError
from remit.storage.online_index import create_index_online, drop_index_online

revision = "0076_webhook_attempt_numbers"
down_revision = "0075_webhook_pending_by_endpoint"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_TABLE = "webhook_delivery_attempts"
_UNIQUE = "ux_webhook_delivery_attempts_number"
_BY_DELIVERY = "ix_webhook_delivery_attempts_delivery_id"
_COLUMNS = ["delivery_id", "attempt_number"]
# Builds tried before giving up: each failed one met a shared number stored during the build by
# a process of the previous version, which the upgrade is replacing.
_BUILDS = 5

# Only the deliveries whose attempts share a number are numbered again; the index by delivery
# serves the grouping. Rows already at their number are left unwritten.
_NUMBER_AGAIN = text(
    "WITH shared AS ("
    " SELECT DISTINCT delivery_id FROM webhook_delivery_attempts"
    " GROUP BY delivery_id, attempt_number HAVING count(*) > 1"
    "), ranked AS ("
    " SELECT attempt.id, row_number() OVER ("
    "  PARTITION BY attempt.delivery_id"
    "  ORDER BY attempt.attempted_at, attempt.attempt_number, attempt.id) AS number"
    " FROM webhook_delivery_attempts AS attempt JOIN shared USING (delivery_id)"
    ")"
    " UPDATE webhook_delivery_attempts AS attempt SET attempt_number = ranked.number"
    " FROM ranked WHERE attempt.id = ranked.id AND attempt.attempt_number <> ranked.number"
    " RETURNING attempt.delivery_id"
)


def _number_again() -> None:
    """Number again the attempts of every delivery where two share a number (its own
    transaction)."""
    deliveries = {row.delivery_id for row in op.get_bind().execute(_NUMBER_AGAIN)}
    if deliveries:
        log.warning(
            "numbered again the attempts of %d webhook deliveries whose attempts shared a "
            "number, in the order they were made",
            len(deliveries),
        )


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for _ in range(_BUILDS):
            _number_again()
            try:
                create_index_online(_UNIQUE, _TABLE, _COLUMNS, unique=True)
                break
            except IntegrityError:
                # A shared number stored during the build: drop the invalid index it left.
                drop_index_online(_UNIQUE, _TABLE)
        else:
            raise MigrationStoppedError(
                f"Cannot build the unique index {_UNIQUE}: webhook attempts sharing a number "
                "kept being stored while it was built. Stop the processes of the previous "
                "version and run the migration again."
            )
        drop_index_online(_BY_DELIVERY, _TABLE)


def downgrade() -> None:
    # The numbers stay as they are: distinct numbers suit the earlier version as well.
    with op.get_context().autocommit_block():
        create_index_online(_BY_DELIVERY, _TABLE, ["delivery_id"])
        drop_index_online(_UNIQUE, _TABLE)
