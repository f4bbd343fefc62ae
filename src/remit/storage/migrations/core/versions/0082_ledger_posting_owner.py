"""A posting's ledger account belongs to the posting's own merchant.

Postings referred to their ledger account by id alone, so nothing in the schema said that the
account was the merchant's: a posting repointed to another merchant's ledger account of the
same name and currency kept its hash and every per-transaction sum (`remit ledger verify`
now reports one: `verify_posting_owners`). The foreign key now runs from
(account_id, ledger_account_id) to ledger_accounts (account_id, id), which a unique constraint
on those two columns backs; it replaces the foreign key on the id alone, so a posting is still
checked against one index, as before.

On a large table, in steps none of which blocks writes for longer than a moment:
- the unique index is built `CONCURRENTLY` (`remit.storage.online_index`), then made the
  constraint (`USING INDEX`: no second read of the table);
- the foreign key is added `NOT VALID`, checking every posting written from then on without
  reading the table, and the one on the id alone is dropped;
- `VALIDATE CONSTRAINT` reads the postings holding only SHARE UPDATE EXCLUSIVE on them, which
  lets reads and writes through.
A posting already on another merchant's ledger account (only a write past the triggers puts
one there) fails the validation: the constraint is then left `NOT VALID`, still checking new
postings, and a warning says to run `remit ledger verify`, which names them. Deciding which
merchant's books are right is an operator's call, not an upgrade's.

An upgrade interrupted after any step finds it done and carries on.

Revision ID: 0082_ledger_posting_owner
Revises: 0081_pm_saved_for_future_usage
"""

import logging

import sqlalchemy as sa
from alembic import op

from remit.storage.online_index import create_index_online, drop_index_online

revision = "0082_ledger_posting_owner"
down_revision = "0081_pm_saved_for_future_usage"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_UNIQUE = "uq_ledger_accounts_account_id_id"
_OWNER_FK = "fk_ledger_postings_ledger_account_owner"
_ID_FK = "fk_ledger_postings_ledger_account_id_ledger_accounts"

_EXISTS = sa.text(
    "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = CAST(:table AS regclass)"
)


def _exists(name: str, table: str) -> bool:
    return op.get_bind().execute(_EXISTS, {"name": name, "table": table}).first() is not None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        if not _exists(_UNIQUE, "ledger_accounts"):
            create_index_online(_UNIQUE, "ledger_accounts", ["account_id", "id"], unique=True)
    if not _exists(_UNIQUE, "ledger_accounts"):
        op.execute(
            f"ALTER TABLE ledger_accounts ADD CONSTRAINT {_UNIQUE} UNIQUE USING INDEX {_UNIQUE}"
        )
    if not _exists(_OWNER_FK, "ledger_postings"):
        op.create_foreign_key(
            _OWNER_FK,
            "ledger_postings",
            "ledger_accounts",
            ["account_id", "ledger_account_id"],
            ["account_id", "id"],
            postgresql_not_valid=True,
        )
    if _exists(_ID_FK, "ledger_postings"):
        op.drop_constraint(_ID_FK, "ledger_postings", type_="foreignkey")
    with op.get_context().autocommit_block():
        try:
            op.execute(f"ALTER TABLE ledger_postings VALIDATE CONSTRAINT {_OWNER_FK}")
        except sa.exc.IntegrityError:
            log.warning(
                "ledger_postings holds postings on another merchant's ledger account: the "
                "constraint %s checks new postings but is left NOT VALID. Run `remit ledger "
                "verify` (foreign_ledger_account) to find them, correct them, then run "
                "ALTER TABLE ledger_postings VALIDATE CONSTRAINT %s.",
                _OWNER_FK,
                _OWNER_FK,
            )


def downgrade() -> None:
    if not _exists(_ID_FK, "ledger_postings"):
        op.create_foreign_key(
            _ID_FK,
            "ledger_postings",
            "ledger_accounts",
            ["ledger_account_id"],
            ["id"],
            postgresql_not_valid=True,
        )
    if _exists(_OWNER_FK, "ledger_postings"):
        op.drop_constraint(_OWNER_FK, "ledger_postings", type_="foreignkey")
    if _exists(_UNIQUE, "ledger_accounts"):
        op.drop_constraint(_UNIQUE, "ledger_accounts", type_="unique")
    with op.get_context().autocommit_block():
        op.execute(f"ALTER TABLE ledger_postings VALIDATE CONSTRAINT {_ID_FK}")
        drop_index_online(_UNIQUE, "ledger_accounts")
