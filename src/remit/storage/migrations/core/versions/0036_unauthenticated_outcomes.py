"""Charges whose 3-D Secure challenge failed say they never reached the network.

Until this revision a charge whose cardholder failed the challenge, or answered it after it
expired, ended `failed` with `outcome` null. Since, it ends as
`remit.payments.never_authenticated` has it: `outcome` `invalid` / `not_sent_to_network` (the
attempt was never sent for authorization), with Radar's risk level and score and a seller
message saying how the challenge ended, as charges their intent left behind before
authentication do (revision 0032). The `charge.failed` events recorded for those charges stay:
events are never rewritten.

Such a charge is `failed` with `authentication.result` `failed` and no outcome (SQL NULL, or
JSON null, which is how SQLAlchemy writes Python's None into a JSONB column); how its challenge
ended is the challenge's status (`expired` for a late answer, `failed` otherwise). Nothing
changes those charges any more but a merchant's update of their description or metadata, which
locks the row and writes back what it read, so a plain UPDATE in batches
(`remit.storage.batched_backfill`) is enough; it touches only charges without an outcome, so a
run stopped part-way finishes the rest when run again. The texts are those of this revision.

Revision ID: 0036_unauthenticated_outcomes
Revises: 0035_ledger_post_plans
"""

from remit.storage.batched_backfill import backfill_in_batches

revision = "0036_unauthenticated_outcomes"
down_revision = "0035_ledger_post_plans"
branch_labels = None
depends_on = None

_FILL_OUTCOME = """
UPDATE charges AS c
SET outcome = jsonb_build_object(
        'type', 'invalid',
        'network_status', 'not_sent_to_network',
        'reason', NULL,
        'risk_level', COALESCE(NULLIF(c.risk->>'risk_level', ''), 'not_assessed'),
        'risk_score', CASE WHEN jsonb_typeof(c.risk->'risk_score') = 'number'
                           THEN c.risk->'risk_score' END,
        'rule', NULL,
        'seller_message',
        'This payment was never sent to the card network: ' || CASE
            WHEN EXISTS (
                SELECT 1 FROM three_d_secure_challenges AS t
                WHERE t.account_id = c.account_id
                  AND t.id = c.authentication->>'challenge_id'
                  AND t.status = 'expired'
            ) THEN 'its 3-D Secure challenge expired before the cardholder answered it.'
            ELSE 'the cardholder failed 3-D Secure authentication.'
        END
    ),
    updated_at = now()
WHERE c.id > :after AND c.id <= :last
  AND c.status = 'failed'
  AND (c.outcome IS NULL OR jsonb_typeof(c.outcome) = 'null')
  AND c.authentication->>'result' = 'failed'
"""


def upgrade() -> None:
    backfill_in_batches("charges", _FILL_OUTCOME)


def downgrade() -> None:
    # The outcome says what happened to these charges; an earlier version renders it as well.
    pass
