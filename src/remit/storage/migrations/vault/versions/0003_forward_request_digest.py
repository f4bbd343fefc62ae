"""Each forwarded authorization's answer is kept with a digest of the parameters it answers.

A retry with a reference gets the answer recorded for it only if it repeats the parameters that
define the operation; a forward that reuses the reference for another card, amount, currency,
capture, 3-D Secure result or stored-credential use is refused (`remit.vault.forward_replay`).

Rows recorded before this revision keep no digest (NULL), and none can be computed for them:
their amount, currency and flags were never stored. The vault replays them to a forward of the
same card to the same destination, which is what their columns can tell, so that a core that
resumes a payment across the upgrade still gets its answer. An earlier vault still running
during a rolling upgrade goes on writing rows without a digest, which are read the same way.

A nullable column without a default changes only the catalog (no rewrite of the table, no scan);
the brief lock it needs is taken under the migrations' lock timeout
(`remit.storage.migration_locks`). Downgrading drops the digests: the earlier code replays by
reference alone, as it always did.

Revision ID: 0003_forward_request_digest
Revises: 0002_cards_live_created
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_forward_request_digest"
down_revision = "0002_cards_live_created"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("forwards", sa.Column("request_digest", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("forwards", "request_digest")
