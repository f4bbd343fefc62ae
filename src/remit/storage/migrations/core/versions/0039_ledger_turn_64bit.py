"""An account's ledger turn is keyed by a 64-bit hash of its id, so accounts no longer share one.

Core migration 0018 made every posting wait for its account's turn, an advisory lock keyed by
("ledg", hashtext(account id)): a 32-bit hash. Two accounts whose ids hash alike share the
turn, and their postings wait on each other for nothing. Among n accounts some pair does with
probability about 1 - exp(-n^2 / 2^33): one in two at 77,000 accounts, near certainty at
200,000; and a merchant that shares its turn with a busy one queues behind every posting of it.

`ledger_wait_turn` now locks the single 64-bit key hashtextextended(account id, seed), with the
seed "ledg" (1818584167, 0018's namespace). Sharing a turn then takes 5 billion accounts for
even odds. Every path that locks an account's chain head takes the turn through this function
(`ledger_post` and `ledger_lock_for_posting` call it first, `JournalRepository.lock_chain`
calls it itself), so redefining it moves them all.

Why this key cannot meet another advisory lock of remit's in practice:
- PostgreSQL keeps a lock on one bigint and a lock on two integers in separate key spaces
  (pg_locks' objsubid 1 and 2), so it is apart from every two-integer lock remit takes:
  reconciliation's ("reco"), the worker's run-alone tasks ("remt"), and the old turn's.
- The other single-bigint keys on the core database are the migrations' lock (1895254928,
  `remit.storage.migrations.core.env`) and those tests take: fixed numbers below 2^32. A 64-bit
  hash equals one of them with odds of 2^-64 per account, and if it ever did, the account's
  postings would only wait while a migration runs.
- The seed makes the ledger's hashes its own: a later lock keyed by hashtextextended of some
  other text under another seed does not land on an account's turn for the same text.

During the upgrade, a transaction that took an account's old turn before this commits and one
that takes its new turn after do not exclude each other; both still lock the chain head row,
so the only cost is that they queue on the row, as before 0018, until the old one ends.

Revision ID: 0039_ledger_turn_64bit
Revises: 0038_reconciliation_started
"""

from alembic import op

revision = "0039_ledger_turn_64bit"
down_revision = "0038_reconciliation_started"
branch_labels = None
depends_on = None

_TURN_SEED = 1818584167  # "ledg"

_WIDE_TURN = f"""
CREATE OR REPLACE FUNCTION ledger_wait_turn(p_account_id text) RETURNS void AS $$
    SELECT pg_advisory_xact_lock(hashtextextended(p_account_id, {_TURN_SEED}));
$$ LANGUAGE sql VOLATILE;
"""

# 0018's definition, byte for byte.
_NARROW_TURN = """
CREATE OR REPLACE FUNCTION ledger_wait_turn(p_account_id text) RETURNS void AS $$
    SELECT pg_advisory_xact_lock(1818584167, hashtext(p_account_id));
$$ LANGUAGE sql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_WIDE_TURN)


def downgrade() -> None:
    op.execute(_NARROW_TURN)
