"""`ledger_post` keeps its plans, and creates ledger accounts only when some are missing.

Both changes leave what the function does as it was; they take work off PostgreSQL on every
posting. Counted with callgrind on a capture-shaped posting against a ledger of 2,000 merchants,
the function ran 1.49 million instructions before and 1.22 million after (-18%); most of what
remains is the rows it must lock and write, their indexes and their foreign-key checks.

1. The balances update joins the ledger accounts to the posting's array of their ids. PL/pgSQL
   caches the plan of each statement and, after five calls, keeps a generic plan unless the
   plans made for the values at hand look cheaper. For this update they do as soon as the
   ledger holds about a thousand ledger accounts (some 350 merchants): the planner sees the
   array's two to four ids instead of assuming ten. From then on the update was planned afresh
   on every posting, a seventh of the function's work, to get the plan the generic one is
   anyway (each id through the primary key). Every statement here has one shape whatever the
   values (one account's rows, by key), so the function now plans generically throughout
   (`plan_cache_mode`, restored when it returns); the other statements already did.
2. The insert of the ledger accounts a posting creates ran on every posting and inserted
   nothing but the first time; it now runs only when one of them is missing (4% of the
   function's instructions).

Revision ID: 0035_ledger_post_plans
Revises: 0034_reconciliation_runs
"""

from alembic import op

revision = "0035_ledger_post_plans"
down_revision = "0034_reconciliation_runs"
branch_labels = None
depends_on = None

_SIGNATURE = """
CREATE OR REPLACE FUNCTION ledger_post(
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
) AS $$"""

# Everything up to the creation of the missing ledger accounts, as 0010_ledger_post wrote it
# and 0018_ledger_turn put the turn first.
_LOCK_AND_GUARD = """
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
    PERFORM ledger_wait_turn(p_account_id);
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
"""

_CREATE_ALWAYS = """
    INSERT INTO ledger_accounts (
        id, account_id, name, currency, non_negative, posted_balance_minor,
        pending_incoming_minor, pending_outgoing_minor, created_at, updated_at
    )
    SELECT p_new_ids[k.position], p_account_id, k.name, k.currency,
           p_flagged_by_default[k.position], 0, 0, 0, p_created_at, p_created_at
    FROM unnest(p_names, p_currencies) WITH ORDINALITY AS k(name, currency, position)
    WHERE NOT v_found[k.position]
    ORDER BY k.position;
"""

_CREATE_WHEN_MISSING = """
    -- Only a posting that touches a ledger account for the first time has one to create.
    IF false = ANY(v_found) THEN
        INSERT INTO ledger_accounts (
            id, account_id, name, currency, non_negative, posted_balance_minor,
            pending_incoming_minor, pending_outgoing_minor, created_at, updated_at
        )
        SELECT p_new_ids[k.position], p_account_id, k.name, k.currency,
               p_flagged_by_default[k.position], 0, 0, 0, p_created_at, p_created_at
        FROM unnest(p_names, p_currencies) WITH ORDINALITY AS k(name, currency, position)
        WHERE NOT v_found[k.position]
        ORDER BY k.position;
    END IF;
"""

_HASH_AND_WRITE = """
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
"""

_LEDGER_POST = (
    _SIGNATURE
    + _LOCK_AND_GUARD
    + _CREATE_WHEN_MISSING
    + _HASH_AND_WRITE
    + "$$ LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan;\n"
)

# The function as 0018_ledger_turn left it; replacing it without the SET clause drops the
# setting too.
_LEDGER_POST_0018 = (
    _SIGNATURE
    + _LOCK_AND_GUARD
    + _CREATE_ALWAYS
    + _HASH_AND_WRITE
    + "$$ LANGUAGE plpgsql VOLATILE;\n"
)


def upgrade() -> None:
    op.execute(_LEDGER_POST)


def downgrade() -> None:
    op.execute(_LEDGER_POST_0018)
