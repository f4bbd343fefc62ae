"""An idempotency key belongs to an account that exists.

Every other row of an account's refers to it by a foreign key, so a call naming an account no
one has is refused when it writes its first row, and answered NOT_FOUND. Not the key: a
payment confirmed at once claims its key in a transaction of its own before it writes the
intent, so the key of such a call stayed behind, at `started`, until the reaper dropped it
72 hours later. With this foreign key the claim itself is refused.

Keys whose account does not exist are deleted first. They can only have come from such calls:
no account is ever deleted, and every row a call writes after its key refers to the account,
so none of them got past its key (nothing was charged, nothing is left to finish). All they
hold is the answer to a call that named no account, which a retry now gets afresh (NOT_FOUND);
the reaper would drop them anyway. Refusing to upgrade until an operator deleted them by hand
would ask for the same deletion with nothing to decide.

On a large table, in three steps, none of which blocks the table's writes for longer than a
moment:
- the constraint is added `NOT VALID`: it checks every key written from then on, without
  reading the table, and its commit ends the brief lock adding it takes;
- the keys of accounts that do not exist are found in one read and deleted in small batches,
  each its own transaction; no new one can appear, since the constraint refuses it;
- `VALIDATE CONSTRAINT` reads the table holding only SHARE UPDATE EXCLUSIVE on it, which
  lets reads and writes through.
An upgrade interrupted after the first step finds the constraint there and carries on.

The downgrade drops the constraint; the deleted keys are not brought back.

Revision ID: 0048_idempotency_key_account
Revises: 0047_request_three_d_secure
"""

import sqlalchemy as sa
from alembic import op

revision = "0048_idempotency_key_account"
down_revision = "0047_request_three_d_secure"
branch_labels = None
depends_on = None

_NAME = "fk_idempotency_keys_account_id_accounts"
_TABLE = "idempotency_keys"
# Keys deleted in one transaction: few enough that a batch holds its row locks and writes its
# WAL only briefly.
_BATCH = 1000

_EXISTS = sa.text(
    "SELECT 1 FROM pg_constraint WHERE conname = :name AND conrelid = CAST(:table AS regclass)"
)
_ORPHAN_ACCOUNTS = sa.text(
    "SELECT DISTINCT k.account_id FROM idempotency_keys AS k "
    "WHERE NOT EXISTS (SELECT 1 FROM accounts AS a WHERE a.id = k.account_id)"
)
# Through the primary key, which begins with the account.
_DELETE_A_BATCH = sa.text(
    "DELETE FROM idempotency_keys WHERE (account_id, key) IN ("
    "SELECT account_id, key FROM idempotency_keys WHERE account_id = ANY(:accounts) "
    "LIMIT :batch)"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(_EXISTS, {"name": _NAME, "table": _TABLE}).first() is None:
        op.create_foreign_key(
            _NAME, _TABLE, "accounts", ["account_id"], ["id"], postgresql_not_valid=True
        )
    with op.get_context().autocommit_block():
        _delete_keys_of_accounts_that_do_not_exist()
        op.execute(f"ALTER TABLE {_TABLE} VALIDATE CONSTRAINT {_NAME}")


def _delete_keys_of_accounts_that_do_not_exist() -> None:
    bind = op.get_bind()
    accounts = list(bind.execute(_ORPHAN_ACCOUNTS).scalars())
    for start in range(0, len(accounts), _BATCH):
        some = accounts[start : start + _BATCH]
        # Until none is left: the reaper may delete some of them meanwhile.
        while bind.execute(_DELETE_A_BATCH, {"accounts": some, "batch": _BATCH}).rowcount:
            pass


def downgrade() -> None:
    op.drop_constraint(_NAME, _TABLE, type_="foreignkey")
