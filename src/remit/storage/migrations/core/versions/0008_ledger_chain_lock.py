"""The chain head is locked without writing it: `ledger_lock_for_posting` used an upsert whose
no-op update wrote a new version of the account's chain-head row on every posting (before the
real update at the end of it), two row versions per posting on the hottest row of the ledger.
It now locks an existing head with SELECT ... FOR UPDATE and upserts only the first time.

Revision ID: 0008_ledger_chain_lock
Revises: 0007_ledger_fast_path
"""

from alembic import op

revision = "0008_ledger_chain_lock"
down_revision = "0007_ledger_fast_path"
branch_labels = None
depends_on = None

_LOCK_FOR_POSTING = """
CREATE OR REPLACE FUNCTION ledger_lock_for_posting(
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
    SELECT c.last_sequence, c.last_hash INTO v_sequence, v_hash
    FROM ledger_chains AS c
    WHERE c.account_id = p_account_id
    FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO ledger_chains AS c (account_id, last_sequence, last_hash)
        VALUES (p_account_id, 0, '')
        ON CONFLICT (account_id) DO UPDATE SET last_sequence = c.last_sequence
        RETURNING c.last_sequence, c.last_hash INTO v_sequence, v_hash;
    END IF;

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

_LOCK_FOR_POSTING_0007 = """
CREATE OR REPLACE FUNCTION ledger_lock_for_posting(
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
    op.execute(_LOCK_FOR_POSTING_0007)
