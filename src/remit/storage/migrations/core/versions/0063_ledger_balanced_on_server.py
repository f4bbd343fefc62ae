"""The database refuses a posting whose legs do not balance, or whose balance changes are not
the ones its legs make: `ledger_post`, before it locks or writes anything, and the write of a
pending resolution or a reversal (`ledger_write_balanced`, called by that write's statement).

Until now only `validate_postings` (Python) checked that a transaction's legs sum to zero in
every currency, and nothing checked that the balance changes the caller sends alongside the
legs (posted, pending incoming, pending outgoing, per ledger account) are the ones the legs
make: both were written as given. A bug in the caller, or a caller other than the journal,
could then book money out of nothing, or balances that the postings do not explain. Both now
raise SQLSTATE RM500 (`remit_require`'s code for a statement's own check: an internal error to
the core's callers); the statement fails, and so its whole transaction: nothing of the posting
is written, even when the write goes out together with its COMMIT.

What each adds is one pass over the arrays the statement was sent, in PL/pgSQL expressions: no
statement to plan or run, no table read, no lock. Each leg's amount is added to its ledger
account's expected changes (a POSTED or POST_PENDING leg moves the posted balance; a PENDING
one reserves, a credit as incoming and a debit as outgoing; a VOID_PENDING leg moves nothing;
each released pending leg gives its reservation back), each account's changes are compared
with those, and once per currency its accounts' legs are summed (in numeric: 64 legs of up to
2^62 - 1 may pass a bigint's range on their way to zero). The currency of a write's ledger
account is the one its balance update returns, not one the caller says.

Measured alone on a shared two-core machine (10,000 to 20,000 calls each, against the same
work without the check; about twice as much when the machine is busy):
- `ledger_post`, a capture's four legs: 4 to 7 microseconds a call. The check comes first, so a
  refused posting has waited for no turn and locked nothing. The rest of the function is
  0035_ledger_post_plans' body, unchanged, with its generic plans: a warm connection still
  plans nothing per posting (tests/integration/ledger/test_posting_plans.py).
- the write of a capture that posts its reservation (three legs, three released): about 11
  microseconds, the aggregate of the updated accounts' ids and currencies included; the same
  checks written as SQL in the statement (two grouped NOT EXISTS) cost about 25.

Revision ID: 0063_ledger_balanced_on_server
Revises: 0062_admin_idempotency_created
"""

from alembic import op

revision = "0063_ledger_balanced_on_server"
down_revision = "0062_admin_idempotency_created"
branch_labels = None
depends_on = None

# The function's signature, declarations and body as 0035_ledger_post_plans left them, byte for
# byte: the check goes in between.
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

_DECLARE = """
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
"""

_LOCK_AND_GUARD = """
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


# What the check needs besides 0035's variables (declared after them).
_DECLARE_BALANCED = """    v_credits bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_names)]);
    v_debits bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_names)]);
    v_net numeric;
    v_key integer;
    v_amount bigint;
"""

# Every leg names one of the posting's ledger accounts (a position in p_names); its amount is a
# credit (> 0) or a debit of that account. Sums of a currency's legs are numeric: one leg is at
# most 2^62 - 1, and 64 of them may add up past a bigint on the way to zero.
_BALANCED = """
    IF p_kind IS DISTINCT FROM 'posted' AND p_kind IS DISTINCT FROM 'pending' THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger transaction %s refused: ledger_post records posted or pending '
            'transactions, not %s.', p_id, coalesce(p_kind, 'none'));
    END IF;
    IF cardinality(p_posting_keys) IS DISTINCT FROM cardinality(p_posting_amounts) THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger transaction %s refused: %s legs but %s amounts.', p_id,
            cardinality(p_posting_keys), cardinality(p_posting_amounts));
    END IF;
    FOR i IN 1 .. cardinality(p_posting_keys) LOOP
        v_key := p_posting_keys[i];
        v_amount := p_posting_amounts[i];
        IF v_key IS NULL OR v_key < 1 OR v_key > cardinality(p_names) THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger transaction %s refused: leg %s names none of its ledger accounts.',
                p_id, i);
        END IF;
        IF v_amount > 0 THEN
            v_credits[v_key] := v_credits[v_key] + v_amount;
        ELSE
            -- A NULL amount lands here and makes the debits NULL: no change matches them.
            v_debits[v_key] := v_debits[v_key] - v_amount;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_names) LOOP
        IF (CASE p_kind
                WHEN 'posted' THEN (p_posted[i], p_incoming[i], p_outgoing[i])
                    IS DISTINCT FROM (v_credits[i] - v_debits[i], 0::bigint, 0::bigint)
                ELSE (p_posted[i], p_incoming[i], p_outgoing[i])
                    IS DISTINCT FROM (0::bigint, v_credits[i], v_debits[i])
            END) THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger transaction %s refused: the balance changes of %s (%s) are not the '
                'ones its legs make.', p_id, p_names[i], p_currencies[i]);
        END IF;
        -- Each currency once, at its first ledger account: its accounts' legs sum to zero.
        IF array_position(p_currencies, p_currencies[i]) = i THEN
            v_net := 0;
            FOR j IN i .. cardinality(p_names) LOOP
                IF p_currencies[j] = p_currencies[i] THEN
                    v_net := v_net + v_credits[j] - v_debits[j];
                END IF;
            END LOOP;
            IF v_net <> 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                    'Ledger transaction %s refused: its legs sum to %s in %s, not to zero.',
                    p_id, v_net, p_currencies[i]);
            END IF;
        END IF;
    END LOOP;"""

_GENERIC_PLANS = "$$ LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan;\n"

_LEDGER_POST_BALANCED = (
    _SIGNATURE
    + _DECLARE
    + _DECLARE_BALANCED
    + "BEGIN"
    + _BALANCED
    + _LOCK_AND_GUARD
    + _CREATE_WHEN_MISSING
    + _HASH_AND_WRITE
    + _GENERIC_PLANS
)

_LEDGER_POST_0035 = (
    _SIGNATURE
    + _DECLARE
    + "BEGIN"
    + _LOCK_AND_GUARD
    + _CREATE_WHEN_MISSING
    + _HASH_AND_WRITE
    + _GENERIC_PLANS
)


# The check of a pending resolution's or a reversal's write (`JournalRepository.write_transaction`),
# called from its statement once the balances are updated: `p_updated` and
# `p_updated_currencies` are the ledger accounts the statement updated and their currencies (as
# the update returned them); `p_changed` and the three changes are what it was sent; the legs are
# the ones it wrote, and the released legs those of the pending transaction it lets go of.
_WRITE_BALANCED = """
CREATE FUNCTION ledger_write_balanced(
    p_id text,
    p_kind text,
    p_updated text[],
    p_updated_currencies text[],
    p_changed text[],
    p_posted bigint[],
    p_incoming bigint[],
    p_outgoing bigint[],
    p_leg_accounts text[],
    p_leg_amounts bigint[],
    p_released_accounts text[],
    p_released_amounts bigint[]
) RETURNS boolean AS $$
DECLARE
    v_posted bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_changed)]);
    v_incoming bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_changed)]);
    v_outgoing bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_changed)]);
    v_legs bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_changed)]);
    v_currencies text[] := array_fill(NULL::text, ARRAY[cardinality(p_changed)]);
    v_net numeric;
    v_at integer;
    v_amount bigint;
BEGIN
    IF p_kind IS DISTINCT FROM 'posted' AND p_kind IS DISTINCT FROM 'post_pending'
        AND p_kind IS DISTINCT FROM 'void_pending'
    THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: it writes resolutions and reversals, not %s.', p_id,
            coalesce(p_kind, 'none'));
    END IF;
    IF cardinality(p_leg_accounts) IS DISTINCT FROM cardinality(p_leg_amounts)
        OR cardinality(p_released_accounts) IS DISTINCT FROM cardinality(p_released_amounts)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: its legs and their amounts do not pair up.', p_id);
    END IF;
    FOR i IN 1 .. cardinality(p_leg_accounts) LOOP
        v_at := array_position(p_changed, p_leg_accounts[i]);
        v_amount := p_leg_amounts[i];
        IF v_at IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: leg %s is on a ledger account it does not change.',
                p_id, i);
        END IF;
        v_legs[v_at] := v_legs[v_at] + v_amount;
        IF p_kind <> 'void_pending' THEN
            v_posted[v_at] := v_posted[v_at] + v_amount;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_released_accounts) LOOP
        v_at := array_position(p_changed, p_released_accounts[i]);
        v_amount := p_released_amounts[i];
        IF v_at IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: released leg %s is on a ledger account it does '
                'not change.', p_id, i);
        END IF;
        IF v_amount > 0 THEN
            v_incoming[v_at] := v_incoming[v_at] - v_amount;
        ELSE
            -- A NULL amount lands here and makes the change NULL: no change matches it.
            v_outgoing[v_at] := v_outgoing[v_at] + v_amount;
        END IF;
    END LOOP;
    FOR i IN 1 .. cardinality(p_changed) LOOP
        IF (p_posted[i], p_incoming[i], p_outgoing[i])
            IS DISTINCT FROM (v_posted[i], v_incoming[i], v_outgoing[i])
        THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: the balance changes of %s are not the ones its '
                'legs and the legs it releases make.', p_id, p_changed[i]);
        END IF;
        v_currencies[i] := p_updated_currencies[array_position(p_updated, p_changed[i])];
    END LOOP;
    -- Each currency once, at its first ledger account: its accounts' legs sum to zero. (An
    -- account the statement did not update has no currency here, and fails the statement's
    -- own count of its updates.)
    FOR i IN 1 .. cardinality(p_changed) LOOP
        IF array_position(v_currencies, v_currencies[i]) = i THEN
            v_net := 0;
            FOR j IN i .. cardinality(p_changed) LOOP
                IF v_currencies[j] IS NOT DISTINCT FROM v_currencies[i] THEN
                    v_net := v_net + v_legs[j];
                END IF;
            END LOOP;
            IF v_net <> 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                    'Ledger write of %s refused: its legs sum to %s in %s, not to zero.',
                    p_id, v_net, coalesce(v_currencies[i], 'no currency'));
            END IF;
        END IF;
    END LOOP;
    RETURN true;
END
$$ LANGUAGE plpgsql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_LEDGER_POST_BALANCED)
    op.execute(_WRITE_BALANCED)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION ledger_write_balanced(text, text, text[], text[], text[], bigint[], "
        "bigint[], bigint[], text[], bigint[], text[], bigint[])"
    )
    op.execute(_LEDGER_POST_0035)
