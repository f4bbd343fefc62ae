"""Charges their intent left behind before they finished end `failed`.

A confirmation makes its charge, `pending`, before 3-D Secure. Until this revision, an intent
that moved on without that attempt (canceled while its challenge waited, updated so that it had
to be confirmed and authenticated again, or confirmed again with a new attempt) left the charge
`pending` for good. Such charges are failed here as `remit.payments.abandoned_attempts` fails
them since: same failure code and message, `outcome` `invalid` / `not_sent_to_network`, no
event, nothing for the ledger (nothing was ever authorized for them).

A pending charge was left behind when its intent's latest charge is another one (each attempt
becomes the latest charge in the transaction that makes it, so an older pending one will never
finish), when its intent is canceled or back in `requires_payment_method`, or when its intent
waits in `requires_confirmation` with an attempt that a confirmation would not continue (not
authenticated, or authenticated for another card, amount or currency). Each of these stays so:
nothing brings an intent back to an attempt it left.

The charges are finished in batches by primary key, each committed on its own
(`remit.storage.batched_backfill`), locking each intent and then its charge (the order the
payments service takes them in) so that a request of an earlier version's process still running
during the upgrade is seen as it commits. The UPDATE touches only pending charges, so a run
stopped part-way finishes the rest when run again. The texts are those of this revision.

Revision ID: 0032_abandoned_attempts
Revises: 0031_reconcile_network_fees
"""

from remit.storage.batched_backfill import backfill_in_batches

revision = "0032_abandoned_attempts"
down_revision = "0031_reconcile_network_fees"
branch_labels = None
depends_on = None

_FINISH_LEFT_BEHIND = """
WITH left_behind AS (
    SELECT c.id,
           COALESCE(c.authentication->>'result' = 'authenticated', false) AS authenticated,
           CASE
               WHEN i.latest_charge_id IS DISTINCT FROM c.id
                   THEN 'the PaymentIntent was confirmed again with a new payment attempt'
               WHEN i.status = 'canceled' THEN 'the PaymentIntent was canceled'
               ELSE 'the PaymentIntent''s amount, currency or payment method changed'
           END AS left_by
    FROM charges AS c
    JOIN payment_intents AS i ON i.account_id = c.account_id AND i.id = c.payment_intent_id
    WHERE c.id > :after AND c.id <= :last
      AND c.status = 'pending'
      AND (
          i.latest_charge_id IS DISTINCT FROM c.id
          OR i.status IN ('canceled', 'requires_payment_method')
          OR (
              i.status = 'requires_confirmation'
              AND NOT COALESCE(
                  c.authentication->>'result' = 'authenticated'
                  AND c.payment_method_id = i.payment_method_id
                  AND c.amount_minor = i.amount_minor
                  AND c.currency = i.currency,
                  false
              )
          )
      )
    FOR UPDATE OF i, c
)
UPDATE charges AS c
SET status = 'failed',
    failure_code = CASE WHEN l.authenticated THEN 'payment_intent_payment_attempt_failed'
                        ELSE 'payment_intent_authentication_failure' END,
    failure_message = CASE
        WHEN l.authenticated THEN 'The payment was authenticated but never confirmed: '
        ELSE 'The payment was abandoned before 3-D Secure authentication was completed: '
    END || l.left_by || '.',
    outcome = jsonb_build_object(
        'type', 'invalid',
        'network_status', 'not_sent_to_network',
        'reason', NULL,
        'risk_level', COALESCE(NULLIF(c.risk->>'risk_level', ''), 'not_assessed'),
        'risk_score', CASE WHEN jsonb_typeof(c.risk->'risk_score') = 'number'
                           THEN c.risk->'risk_score' END,
        'rule', NULL,
        'seller_message',
        'This payment was never sent to the card network: ' || l.left_by
            || ' before it was completed.'
    ),
    network_result = NULL,
    updated_at = now()
FROM left_behind AS l
WHERE c.id = l.id
"""


def upgrade() -> None:
    backfill_in_batches("charges", _FINISH_LEFT_BEHIND)


def downgrade() -> None:
    # Which failed charges were pending before cannot be told apart from those failed since by
    # the payments service; they stay failed, which is what they are.
    pass
