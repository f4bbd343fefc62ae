"""The journal's lock phase in one round trip: chain head, replay digest, ledger accounts.

A posting starts by locking its account's chain head, then reads the payload digest of the
transaction id (replay or refusal), then locks the ledger accounts it touches in (name,
currency) order. `ledger_lock_for_posting` does the three in that order, each statement with
a fresh snapshot (a VOLATILE PL/pgSQL function), so a transaction committed by whoever held
the chain head before us is seen exactly as a separate statement would see it. When the id
already exists, no ledger account is locked (the caller replays or refuses).

Every row carries the chain head and the digest; when no ledger account is locked there is
one row whose ledger account columns are NULL.

Revision ID: 0007_ledger_fast_path
Revises: 0006_radar
"""

from alembic import op

revision = "0007_ledger_fast_path"
down_revision = "0006_radar"
branch_labels = None
depends_on = None

_LOCK_FOR_POSTING = """
CREATE FUNCTION ledger_lock_for_posting(
    p_account_id text, p_transaction_id text, p_names text[], p_currencies text[]
) RETURNS TABLE (
    chain_sequence bigint,
    chain_hash text,
    existing_digest text,
    la_id text,
    la_name text,
    la_currency text,
    la_non_negative boolean,
    la_posted_balance_minor bigint,
    la_pending_incoming_minor bigint,
    la_pending_outgoing_minor bigint,
    la_created_at timestamptz,
    la_updated_at timestamptz
) AS $$
DECLARE
    v_sequence bigint;
    v_hash text;
    v_digest text;
BEGIN
    INSERT INTO ledger_chains AS c (account_id, last_sequence, last_hash)
    VALUES (p_account_id, 0, '')
    ON CONFLICT (account_id) DO UPDATE SET last_sequence = c.last_sequence
    RETURNING c.last_sequence, c.last_hash INTO v_sequence, v_hash;

    SELECT t.payload_digest INTO v_digest
    FROM ledger_transactions AS t
    WHERE t.account_id = p_account_id AND t.id = p_transaction_id;

    IF v_digest IS NULL AND cardinality(p_names) > 0 THEN
        RETURN QUERY
        SELECT v_sequence, v_hash, v_digest, a.id, a.name, a.currency, a.non_negative,
               a.posted_balance_minor, a.pending_incoming_minor, a.pending_outgoing_minor,
               a.created_at, a.updated_at
        FROM ledger_accounts AS a
        WHERE a.account_id = p_account_id
          AND (a.name, a.currency) IN (SELECT k.name, k.currency
                                       FROM unnest(p_names, p_currencies) AS k(name, currency))
        ORDER BY a.name, a.currency
        FOR UPDATE OF a;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT v_sequence, v_hash, v_digest, NULL::text, NULL::text, NULL::text,
        NULL::boolean, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz,
        NULL::timestamptz;
END
$$ LANGUAGE plpgsql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_LOCK_FOR_POSTING)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_lock_for_posting(text, text, text[], text[])")
