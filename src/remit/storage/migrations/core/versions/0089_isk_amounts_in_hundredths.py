"""Upgrade a core database holding isk amounts only once an operator has decided what they are.

From this version isk is counted in hundredths of a króna, as on Stripe's API (`amount=500` is
5 kr), where remit counted whole krónur before: each isk amount stored so far would be read as
a hundredth of what it was, and a balance of 500 kr paid out as 5 kr. Rescaling them in place
would rewrite the ledger's hash-chained history, so the upgrade stops here instead, this
migration changing nothing (those before it stay applied), if any table holding amounts holds
one in isk, until the operator decides (README, Upgrading) and sets
REMIT_STORED_ISK_AMOUNTS=read-as-hundredths (`remit.storage.isk_amounts_guard`). A database
with none passes, and nothing is recorded.

These are the tables with a currency at 0088, the ledger's accounts first: they are few (one
per merchant, name and currency), and every isk payment captured moved money on one. The
ledger's postings and transactions have no currency of their own: their amounts are on those
accounts. Events, webhook deliveries, jobs and idempotency keys hold copies of these objects.

The downgrade changes nothing: this revision changed nothing either.

Revision ID: 0089_isk_amounts_in_hundredths
Revises: 0088_card_fingerprint_scope
"""

from remit.storage.isk_amounts_guard import stop_on_stored_isk_amounts

revision = "0089_isk_amounts_in_hundredths"
down_revision = "0088_card_fingerprint_scope"
branch_labels = None
depends_on = None

TABLES_WITH_AMOUNTS = (
    "ledger_accounts",
    "payment_intents",
    "charges",
    "refunds",
    "disputes",
    "balance_transactions",
    "payouts",
    "three_d_secure_challenges",
    "reconciliation_rows",
)


def upgrade() -> None:
    stop_on_stored_isk_amounts("core", TABLES_WITH_AMOUNTS, "core migration 0089")


def downgrade() -> None:
    pass
