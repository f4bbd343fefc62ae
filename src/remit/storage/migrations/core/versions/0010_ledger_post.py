"""A whole POSTED or PENDING posting in one statement: `ledger_post`.

A posting used to be two round trips: the lock phase (`ledger_lock_for_posting`) and, after the
client had computed the next hash, the write. The account's chain head stayed locked from the
first to the commit, so every other posting of the account waited for a round trip to the
client and back, and for the client's event loop to get round to it. `ledger_post` does the
same steps in the same order on the server:

1. create or lock the account's chain head;
2. read the payload digest of the transaction id (a retry replays, another payload is refused:
   the caller decides, nothing is written);
3. lock the existing ledger accounts it touches, in (name, currency) order;
4. check the guards (a flagged ledger account may not go below zero; nothing is written when
   one refuses, and the first refusing account is named);
5. create the ledger accounts that do not exist yet, under ids the caller chose;
6. hash the transaction onto the chain: SHA-256 over the previous hash, a newline and the
   transaction's canonical encoding, exactly as `remit.ledger.domain.chain_hash` does. The
   caller sends the encoding cut where the sequence number goes (`p_encoding_head`,
   `p_encoding_tail`), since only the locked chain head knows the sequence;
7. write the transaction, its postings in order, the balances and the chain head.

Each statement inside runs with a fresh snapshot (a VOLATILE PL/pgSQL function), so a posting
committed by whoever held the chain head before sees exactly what a separate statement would.

Keys are passed as parallel arrays sorted by (name, currency); postings name their key by its
1-based position in those arrays.

Revision ID: 0010_ledger_post
Revises: 0009_require
"""

from alembic import op

revision = "0010_ledger_post"
down_revision = "0009_require"
branch_labels = None
depends_on = None

_LEDGER_POST = """
CREATE FUNCTION ledger_post(
    p_account_id text,
    p_id text,
    p_kind text,
    p_pending_status text,
    p_expires_at timestamptz,
    p_metadata jsonb,
    p_description text,
    p_payload_digest text,
    p_created_at timestamptz,
    p_encoding_head bytea,
    p_encoding_tail bytea,
    p_names text[],
    p_currencies text[],
    p_new_ids text[],
    p_flagged_by_default boolean[],
    p_guarded boolean[],
    p_posted bigint[],
    p_incoming bigint[],
    p_outgoing bigint[],
    p_posting_keys integer[],
    p_posting_amounts bigint[]
) RETURNS TABLE (
    outcome text,
    existing_digest text,
    sequence bigint,
    hash text,
    previous_hash text,
    refused_name text,
    refused_currency text,
    refused_available bigint,
    refused_needed bigint
) AS $$
DECLARE
    v_sequence bigint;
    v_hash text;
    v_digest text;
    v_ids text[] := p_new_ids;
    v_found boolean[] := array_fill(false, ARRAY[cardinality(p_names)]);
    v_spendable bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_names)]);
    v_flagged boolean[] := p_flagged_by_default;
    v_taking bigint;
    v_new_hash text;
    r record;
    i integer;
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
    WHERE t.account_id = p_account_id AND t.id = p_id;
    IF v_digest IS NOT NULL THEN
        RETURN QUERY SELECT 'exists'::text, v_digest, NULL::bigint, NULL::text, NULL::text,
            NULL::text, NULL::text, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    FOR r IN
        SELECT k.position::integer AS position, a.id, a.non_negative,
               a.posted_balance_minor - a.pending_outgoing_minor AS spendable
        FROM ledger_accounts AS a
        JOIN unnest(p_names, p_currencies) WITH ORDINALITY AS k(name, currency, position)
            ON a.name = k.name AND a.currency = k.currency
        WHERE a.account_id = p_account_id
        ORDER BY a.name, a.currency
        FOR UPDATE OF a
    LOOP
        v_ids[r.position] := r.id;
        v_found[r.position] := true;
        v_flagged[r.position] := r.non_negative;
        v_spendable[r.position] := r.spendable;
    END LOOP;

    FOR i IN 1 .. cardinality(p_names) LOOP
        v_taking := p_posted[i] - p_outgoing[i];
        IF (v_flagged[i] OR p_guarded[i]) AND v_taking < 0
                AND v_spendable[i] + v_taking < 0 THEN
            RETURN QUERY SELECT 'insufficient'::text, NULL::text, NULL::bigint, NULL::text,
                NULL::text, p_names[i], p_currencies[i], greatest(v_spendable[i], 0),
                -v_taking;
            RETURN;
        END IF;
    END LOOP;

    INSERT INTO ledger_accounts (
        id, account_id, name, currency, non_negative, posted_balance_minor,
        pending_incoming_minor, pending_outgoing_minor, created_at, updated_at
    )
    SELECT p_new_ids[k.position], p_account_id, k.name, k.currency,
           p_flagged_by_default[k.position], 0, 0, 0, p_created_at, p_created_at
    FROM unnest(p_names, p_currencies) WITH ORDINALITY AS k(name, currency, position)
    WHERE NOT v_found[k.position]
    ORDER BY k.position;

    v_sequence := v_sequence + 1;
    v_new_hash := encode(sha256(
        convert_to(v_hash, 'UTF8') || '\\x0a'::bytea || p_encoding_head
        || convert_to(v_sequence::text, 'UTF8') || p_encoding_tail
    ), 'hex');

    INSERT INTO ledger_transactions (
        account_id, id, sequence, kind, pending_transaction_id, expires_at, metadata,
        description, payload_digest, hash, previous_hash, created_at, pending_status
    ) VALUES (
        p_account_id, p_id, v_sequence, p_kind, NULL, p_expires_at, p_metadata,
        p_description, p_payload_digest, v_new_hash, v_hash, p_created_at, p_pending_status
    );

    INSERT INTO ledger_postings (account_id, transaction_id, ledger_account_id, amount_minor)
    SELECT p_account_id, p_id, v_ids[leg.key], leg.amount_minor
    FROM unnest(p_posting_keys, p_posting_amounts)
        WITH ORDINALITY AS leg(key, amount_minor, position)
    ORDER BY leg.position;

    UPDATE ledger_accounts AS la SET
        posted_balance_minor = la.posted_balance_minor + p_posted[k.position],
        pending_incoming_minor = la.pending_incoming_minor + p_incoming[k.position],
        pending_outgoing_minor = la.pending_outgoing_minor + p_outgoing[k.position],
        updated_at = p_created_at
    FROM unnest(v_ids) WITH ORDINALITY AS k(id, position)
    WHERE la.id = k.id;

    UPDATE ledger_chains SET last_sequence = v_sequence, last_hash = v_new_hash
    WHERE account_id = p_account_id;

    RETURN QUERY SELECT 'written'::text, NULL::text, v_sequence, v_new_hash, v_hash,
        NULL::text, NULL::text, NULL::bigint, NULL::bigint;
END
$$ LANGUAGE plpgsql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_LEDGER_POST)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION ledger_post(text, text, text, text, timestamptz, jsonb, text, text, "
        "timestamptz, bytea, bytea, text[], text[], text[], boolean[], boolean[], bigint[], "
        "bigint[], bigint[], integer[], bigint[])"
    )
