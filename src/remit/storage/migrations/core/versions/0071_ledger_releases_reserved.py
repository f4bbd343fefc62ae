"""The write of a pending resolution releases, and posts, only what the pending transaction
reserved, as the database has it.

0063_ledger_balanced_on_server made the write of a pending resolution or a reversal check its
balance changes against its legs and the pending legs it releases, but both kinds of leg came
from the caller: nothing compared them with the postings the pending transaction stored. A
caller with a bug could then post a reservation with legs on accounts it never reserved, or
larger than reserved, void one with other legs than it reserved, or release legs that are not
the reservation's (giving back more, or less, than was held), and the books would balance.

`ledger_write_releases`, called by the same statement as `ledger_write_balanced`
(`JournalRepository.write_transaction`), reads the pending transaction and its postings (one
index lookup of a few rows, within that statement: no statement is added) and refuses, with
SQLSTATE RM500 as 0063 does:
- a resolution (post_pending, void_pending) of a transaction that is not an open pending one
  of the account;
- released legs that are not exactly the reserved ones (each ledger account once, the same
  amount);
- a void whose legs are not exactly the reserved ones;
- a post whose legs are not each on a reserved ledger account, with the reserved amount's sign,
  no larger (`domain.validate_partial_post`; a full post posts the reserved legs themselves);
- a reversal (posted) that names a pending transaction or releases anything.

Measured alone on the shared two-core machine (20,000 calls, a reservation of three legs posted
whole): about 14 to 16 microseconds a call, against 6 to 7 for `ledger_write_balanced` on the
same legs; most of the difference is the read. Only a resolution or a reversal pays it (a
separate capture, a cancel, an expiry): a payment captured at once posts through `ledger_post`.

A new function beside 0063's, which is unchanged; the downgrade drops it. An earlier process
running against this schema sends its write without the call, as before.

Revision ID: 0071_ledger_releases_reserved
Revises: 0070_ledger_history_no_truncate
"""

from alembic import op

revision = "0071_ledger_releases_reserved"
down_revision = "0070_ledger_history_no_truncate"
branch_labels = None
depends_on = None

_WRITE_RELEASES = """
CREATE FUNCTION ledger_write_releases(
    p_account_id text,
    p_id text,
    p_kind text,
    p_pending_transaction_id text,
    p_leg_accounts text[],
    p_leg_amounts bigint[],
    p_released_accounts text[],
    p_released_amounts bigint[]
) RETURNS boolean AS $$
DECLARE
    v_kind text;
    v_status text;
    v_reserved_accounts text[];
    v_reserved_amounts bigint[];
    v_at integer;
    v_amount bigint;
BEGIN
    IF p_kind IS DISTINCT FROM 'post_pending' AND p_kind IS DISTINCT FROM 'void_pending' THEN
        IF p_pending_transaction_id IS NOT NULL OR cardinality(p_released_accounts) <> 0 THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: a %s transaction releases no pending transaction.',
                p_id, coalesce(p_kind, 'none'));
        END IF;
        RETURN true;
    END IF;

    SELECT t.kind, t.pending_status,
           array_agg(p.ledger_account_id ORDER BY p.id), array_agg(p.amount_minor ORDER BY p.id)
    INTO v_kind, v_status, v_reserved_accounts, v_reserved_amounts
    FROM ledger_transactions AS t
    JOIN ledger_postings AS p ON p.account_id = t.account_id AND p.transaction_id = t.id
    WHERE t.account_id = p_account_id AND t.id = p_pending_transaction_id
    GROUP BY t.kind, t.pending_status;
    IF v_kind IS DISTINCT FROM 'pending' OR v_status IS DISTINCT FROM 'open' THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: %s is not an open pending transaction of %s.',
            p_id, coalesce(p_pending_transaction_id, 'none'), p_account_id);
    END IF;

    -- The released legs are the reserved ones: as many, each ledger account once, each with
    -- its reserved amount (the reserved legs name each account once, so this pairs them all).
    IF cardinality(p_released_accounts) IS DISTINCT FROM cardinality(v_reserved_accounts)
        OR cardinality(p_released_amounts) IS DISTINCT FROM cardinality(v_reserved_accounts)
    THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: it releases %s legs, %s reserved %s.', p_id,
            cardinality(p_released_accounts), p_pending_transaction_id,
            cardinality(v_reserved_accounts));
    END IF;
    FOR i IN 1 .. cardinality(p_released_accounts) LOOP
        v_at := array_position(v_reserved_accounts, p_released_accounts[i]);
        IF v_at IS NULL
            OR array_position(p_released_accounts, p_released_accounts[i]) <> i
            OR v_reserved_amounts[v_at] IS DISTINCT FROM p_released_amounts[i]
        THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: released leg %s is not one %s reserved.',
                p_id, i, p_pending_transaction_id);
        END IF;
    END LOOP;

    IF p_kind = 'void_pending' AND (
        cardinality(p_leg_accounts) IS DISTINCT FROM cardinality(v_reserved_accounts)
        OR cardinality(p_leg_amounts) IS DISTINCT FROM cardinality(v_reserved_accounts))
    THEN
        RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
            'Ledger write of %s refused: a void records the %s legs %s reserved, not %s.',
            p_id, cardinality(v_reserved_accounts), p_pending_transaction_id,
            cardinality(p_leg_accounts));
    END IF;
    -- A void's legs are the reserved ones; a post's are on reserved ledger accounts (each
    -- once), with the reserved amount's sign, and no larger.
    FOR i IN 1 .. cardinality(p_leg_accounts) LOOP
        v_at := array_position(v_reserved_accounts, p_leg_accounts[i]);
        v_amount := p_leg_amounts[i];
        IF v_at IS NULL
            OR array_position(p_leg_accounts, p_leg_accounts[i]) <> i
            OR v_amount IS NULL
            OR (p_kind = 'void_pending' AND v_amount <> v_reserved_amounts[v_at])
            OR v_amount = 0
            OR sign(v_amount) <> sign(v_reserved_amounts[v_at])
            OR abs(v_amount) > abs(v_reserved_amounts[v_at])
        THEN
            RAISE EXCEPTION USING ERRCODE = 'RM500', MESSAGE = format(
                'Ledger write of %s refused: leg %s is not within what %s reserved.',
                p_id, i, p_pending_transaction_id);
        END IF;
    END LOOP;
    RETURN true;
END
$$ LANGUAGE plpgsql VOLATILE;
"""


def upgrade() -> None:
    op.execute(_WRITE_RELEASES)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION ledger_write_releases(text, text, text, text, text[], bigint[], text[], "
        "bigint[])"
    )
