"""An authorization never gives back more than it held: captured + released <= authorized.

An authorization's held amount goes two ways: what its captures captured (`captured_minor` on
the authorization) and what its final capture or void released back to the cardholder
(`released_minor` on that operation, acquirer migration 0005). Their sum can never exceed what
was authorized, or the acquirer's records (and its settlement report, which carries the
releases) would show the cardholder's money both captured and released. The service keeps to
it (`remit.acquirer.domain`), and a CHECK on the authorization already bounds what was
captured; but the releases live on the operations, which a CHECK cannot sum, so a write of
either table could break the bound unseen.

Triggers check it after every write that could: an operation inserted, or its release or
authorization changed; an authorization's authorized or captured amount changed. Each reads
the authorization under a row lock (the lock the service takes first for every capture, void
and refund), so two transactions writing operations of one authorization are checked one
after the other. A write that breaks the bound fails with check_violation, as a CHECK does.

The authorizations already recorded are checked as a CHECK added to a table would be: the
upgrade fails, naming them, if any breaks the bound (0005's backfill never makes one).

Revision ID: 0006_authorization_amounts
Revises: 0005_released_remainders
"""

from alembic import op

revision = "0006_authorization_amounts"
down_revision = "0005_released_remainders"
branch_labels = None
depends_on = None

_FUNCTIONS = """
CREATE FUNCTION acquirer_check_authorization_amounts(auth_id text) RETURNS void AS $$
DECLARE
    held bigint;
    captured bigint;
    released bigint;
BEGIN
    SELECT authorized_minor, captured_minor INTO held, captured
    FROM authorizations WHERE id = auth_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT coalesce(sum(released_minor), 0) INTO released
    FROM operations WHERE authorization_id = auth_id;
    IF captured + released > held THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            CONSTRAINT = 'authorization_amounts_within_authorized',
            MESSAGE = format(
                'authorization %s: captured %s plus released %s exceeds the %s authorized',
                auth_id, captured, released, held
            );
    END IF;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION acquirer_operation_amounts_checked() RETURNS trigger AS $$
BEGIN
    IF NEW.authorization_id IS NOT NULL THEN
        PERFORM acquirer_check_authorization_amounts(NEW.authorization_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION acquirer_authorization_amounts_checked() RETURNS trigger AS $$
BEGIN
    PERFORM acquirer_check_authorization_amounts(NEW.id);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER operations_within_authorized
    AFTER INSERT OR UPDATE OF released_minor, authorization_id ON operations
    FOR EACH ROW EXECUTE FUNCTION acquirer_operation_amounts_checked();

CREATE TRIGGER authorizations_within_authorized
    AFTER UPDATE OF authorized_minor, captured_minor ON authorizations
    FOR EACH ROW EXECUTE FUNCTION acquirer_authorization_amounts_checked();
"""

# Refuse the upgrade of a database that already breaks the bound, naming a few of them.
_EXISTING = """
DO $$
DECLARE
    broken text;
BEGIN
    SELECT string_agg(id, ', ') INTO broken FROM (
        SELECT a.id
        FROM authorizations AS a
        JOIN operations AS o ON o.authorization_id = a.id
        GROUP BY a.id, a.authorized_minor, a.captured_minor
        HAVING a.captured_minor + sum(o.released_minor) > a.authorized_minor
        ORDER BY a.id
        LIMIT 20
    ) AS over;
    IF broken IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'check_violation',
            MESSAGE = 'authorizations whose captured plus released exceeds the authorized '
                || 'amount: ' || broken;
    END IF;
END
$$;
"""

_DROP = """
DROP TRIGGER authorizations_within_authorized ON authorizations;
DROP TRIGGER operations_within_authorized ON operations;
DROP FUNCTION acquirer_authorization_amounts_checked();
DROP FUNCTION acquirer_operation_amounts_checked();
DROP FUNCTION acquirer_check_authorization_amounts(text);
"""


def upgrade() -> None:
    op.execute(_EXISTING)
    op.execute(_FUNCTIONS)


def downgrade() -> None:
    op.execute(_DROP)
