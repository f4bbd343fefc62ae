"""A posting waits for its account's turn on an advisory lock, before it touches any ledger row.

Every posting of an account locks the account's chain head, and then its ledger accounts. With
many payments in flight, postings used to queue on the chain head's row lock itself. A waiter
there keeps the row's page pinned, and when it is woken it follows the row's chain of updated
versions to the newest. A page that is always pinned is never pruned (pruning needs the page
to itself), so the versions of the chain head and of the balance rows pile up, and every
lookup walks further: after 3,000 payments at 16 in flight the one chain-head row took 6
pages, and PostgreSQL's CPU per payment grew with every run.

A transaction-scoped advisory lock per account, taken first, makes postings queue where waiting
costs nothing: on a lock no row or page holds. A posting then touches its rows alone, the page
is pruned as usual, and its versions stay few. Every path that locks an account's chain head
takes the turn first (`ledger_post`, `ledger_lock_for_posting`, and the payout's lock through
`ledger_wait_turn`), so no two transactions take the two locks in opposite orders. The turn is
re-entrant within a transaction and ends with it.

The lock's key is a 32-bit hash of the account id, so two accounts may share a turn: their
postings are then ordered one after the other, which costs only waiting (core migration 0039
keys the turn by a 64-bit hash instead, as with many merchants such pairs become likely).
During a rolling upgrade, a process still running the code from before this migration takes
the chain head's row first and the turn second (inside `ledger_post`); against a new process
that order can deadlock, and PostgreSQL's deadlock detector then fails one of the two
transactions, which is retried like any failed request. Stopping the worker during the upgrade
avoids even that.

The two functions are changed in place: their definitions are read from the database and the
call is put at the top of their bodies, so this migration states only what it adds.

Revision ID: 0018_ledger_turn
Revises: 0017_vault_sweep_watermark
"""

from alembic import op
from sqlalchemy import text

revision = "0018_ledger_turn"
down_revision = "0017_vault_sweep_watermark"
branch_labels = None
depends_on = None

# pg_advisory_xact_lock(namespace, key): "ledg" keeps the ledger's keys apart from every other
# advisory lock remit takes.
_WAIT_TURN = """
CREATE FUNCTION ledger_wait_turn(p_account_id text) RETURNS void AS $$
    SELECT pg_advisory_xact_lock(1818584167, hashtext(p_account_id));
$$ LANGUAGE sql VOLATILE;
"""

_FUNCTIONS = (
    "ledger_post(text, text, text, text, timestamptz, jsonb, text, text, timestamptz, bytea, "
    "bytea, text[], text[], text[], boolean[], boolean[], bigint[], bigint[], bigint[], "
    "integer[], bigint[])",
    "ledger_lock_for_posting(text, text, text[], text[])",
)
_BODY_START = "\nBEGIN\n"
_CALL = "    PERFORM ledger_wait_turn(p_account_id);\n"


def _definition(signature: str) -> str:
    row = op.get_bind().execute(
        text("SELECT pg_get_functiondef(CAST(:signature AS regprocedure))"),
        {"signature": signature},
    )
    return str(row.scalar_one())


def _redefine(signature: str, *, with_turn: bool) -> None:
    definition = _definition(signature)
    start = definition.index(_BODY_START) + len(_BODY_START)
    if with_turn:
        changed = definition[:start] + _CALL + definition[start:]
    else:
        if not definition.startswith(_CALL, start):
            raise RuntimeError(f"{signature} does not start by waiting for its turn")
        changed = definition[:start] + definition[start + len(_CALL) :]
    # Straight to the driver, without parameters: the body may hold `%` and `:` of its own.
    with op.get_bind().connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(changed)


def upgrade() -> None:
    op.execute(_WAIT_TURN)
    for signature in _FUNCTIONS:
        _redefine(signature, with_turn=True)


def downgrade() -> None:
    for signature in _FUNCTIONS:
        _redefine(signature, with_turn=False)
    op.execute("DROP FUNCTION ledger_wait_turn(text)")
