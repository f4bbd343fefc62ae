"""The write of a reversal negates exactly the transaction it reverses, once, and records it.

A reversal is a posted transaction written by `JournalRepository.write_transaction` (the
write of pending resolutions and reversals) with metadata `{"reverses": <transaction id>}`:
`journal.reverse` negates every leg of a posted transaction, the ledger's only way to correct
one. remit makes no partial reversals: a refund, whole or partial, posts a transaction of its
own ("re:refund"), and the reversal remit makes, of a refund that failed after it was posted
("re:refund_failure"), negates all of it. Until now the database checked such a write only as
0063_ledger_balanced_on_server checks any (its legs balance, its balance changes are its
legs') and as 0071_ledger_releases_reserved checks a posted one (it releases nothing): a
reversal with another amount, a leg on another ledger account, a leg left out, or reversing
a transaction already reversed or itself a reversal, was written as long as it balanced. The
journal's separate UPDATE that records the original's `reversed_by` could also be left out,
and then nothing stopped a second reversal.

`ledger_write_reversal`, called by the same statement as `ledger_write_balanced` and
`ledger_write_releases`, reads the transaction the reversal names (its row and postings, by
index, within that statement: no statement is added) and refuses, with SQLSTATE RM500 as 0063
and 0071 do, a posted write:
- whose metadata names no transaction it reverses;
- of a transaction that is not a posted (posted or post_pending) one of the account;
- of a transaction already reversed (its `reversed_by` set);
- of a transaction that is itself a reversal (it reverses a transaction whose `reversed_by`
  names it): reversing a correction is posting the original again, which is a transaction of
  its own, not a reversal;
- whose legs are not exactly the original's negated: as many, in the original's order, each
  on the same ledger account with the opposite amount.
It then sets the original's `reversed_by` to the reversal, in the same statement, so that a
reversal is never written without it (0064_ledger_outcomes_forward lets it be set once); the
journal no longer sends that UPDATE on its own (a reversal is one statement fewer). A pending
resolution passes through at once: about 1 microsecond a call, measured alone on the shared
two-core machine (20,000 calls); a reversal pays an index read of a few rows, as 0071's
resolutions do, and the update of one row it used to send as a statement of its own.

A new function beside 0063's and 0071's, which are unchanged; the downgrade drops it. An
earlier process running against this schema sends its write without the call, and records
`reversed_by` itself, as before.

Revision ID: 0072_ledger_reversals_negate
Revises: 0071_ledger_releases_reserved
"""

from alembic import op

revision = "0072_ledger_reversals_negate"
down_revision = "0071_ledger_releases_reserved"
branch_labels = None
depends_on = None

_WRITE_REVERSAL = """
CREATE FUNCTION ledger_write_reversal(
    p_account_id text,
    p_id text,
    p_kind text,
    p_metadata jsonb,
    p_leg_accounts text[],
    p_leg_amounts bigint[]
) RETURNS boolean AS $$
DECLARE
    v_reverses text;
    v_kind text;
    v_reversed_by text;
    v_reverses_too text;
    v_accounts text[];
    v_amounts bigint[];
BEGIN
    IF p_kind IS DISTINCT FROM 'posted' THEN
        RETURN true;
    END IF;
    v_reverses := p_metadata ->> 'reverses';
    IF v_reverses IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: a posted transaction written here is a reversal, and '
            'its metadata names no transaction it reverses.', p_id);
    END IF;

    -- The original, its legs in the order they were written, and the transaction it itself
    -- reverses when it is a reversal (the one whose reversed_by names it).
    SELECT t.kind, t.reversed_by, r.id,
           array_agg(p.ledger_account_id ORDER BY p.id), array_agg(p.amount_minor ORDER BY p.id)
    INTO v_kind, v_reversed_by, v_reverses_too, v_accounts, v_amounts
    FROM ledger_transactions AS t
    JOIN ledger_postings AS p ON p.account_id = t.account_id AND p.transaction_id = t.id
    LEFT JOIN ledger_transactions AS r
        ON r.account_id = t.account_id AND r.id = t.metadata ->> 'reverses'
        AND r.reversed_by = t.id
    WHERE t.account_id = p_account_id AND t.id = v_reverses
    GROUP BY t.kind, t.reversed_by, r.id;
    IF v_kind IS DISTINCT FROM 'posted' AND v_kind IS DISTINCT FROM 'post_pending' THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: %s is not a posted transaction of %s.',
            p_id, v_reverses, p_account_id);
    END IF;
    IF v_reversed_by IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: %s was already reversed by %s.',
            p_id, v_reverses, v_reversed_by);
    END IF;
    IF v_reverses_too IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: %s is itself the reversal of %s.',
            p_id, v_reverses, v_reverses_too);
    END IF;

    IF cardinality(p_leg_accounts) IS DISTINCT FROM cardinality(v_accounts)
        OR cardinality(p_leg_amounts) IS DISTINCT FROM cardinality(v_accounts)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: it has %s legs, %s has %s.', p_id,
            cardinality(p_leg_accounts), v_reverses, cardinality(v_accounts));
    END IF;
    FOR i IN 1 .. cardinality(p_leg_accounts) LOOP
        IF p_leg_accounts[i] IS DISTINCT FROM v_accounts[i]
            OR p_leg_amounts[i] IS DISTINCT FROM -v_amounts[i]
        THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: leg %s is not the negation of leg %s of %s.',
                p_id, i, i, v_reverses);
        END IF;
    END LOOP;

    -- Recorded here, in the reversal's own statement: a reversal never goes without it. The
    -- caller holds the account's chain head, which every reversal of it takes first; the
    -- condition still holds it to once, whatever the isolation.
    UPDATE ledger_transactions SET reversed_by = p_id
    WHERE account_id = p_account_id AND id = v_reverses AND reversed_by IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: %s was reversed meanwhile.', p_id, v_reverses);
    END IF;
    RETURN true;
END
$$ LANGUAGE plpgsql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_WRITE_REVERSAL)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_write_reversal(text, text, text, jsonb, text[], bigint[])")
