"""`remit_require`: a statement's own check, raised by the server.

A write whose outcome must be checked before its transaction may commit (the key's owner token
fenced the update, a ledger write touched every row it meant to) can check itself with this
function. The server then refuses the statement, and so the transaction, when the check fails.
That lets a unit of work send its last writes and its COMMIT in one pipeline: a failed check
aborts the pipeline before the COMMIT runs.

Revision ID: 0009_require
Revises: 0008_ledger_chain_lock
"""

from alembic import op

revision = "0009_require"
down_revision = "0008_ledger_chain_lock"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION remit_require(ok boolean, sqlstate text, message text) RETURNS boolean AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message;
    END IF;
    RETURN true;
END
$$ LANGUAGE plpgsql VOLATILE;
"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION remit_require(boolean, text, text)")
