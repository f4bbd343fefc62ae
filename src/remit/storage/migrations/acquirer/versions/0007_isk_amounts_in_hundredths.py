"""Upgrade an acquirer database holding isk amounts only once an operator has decided what
they are.

As core migration 0089 does for the core: isk is now counted in hundredths of a króna, where
remit counted whole krónur before, so an authorization of 500 kr stored before would be read as
5 kr, captured, refunded and reported in settlement so, no longer agreeing with what the
cardholder was charged. The upgrade stops here, this migration changing nothing (those
before it, the core's and the vault's too, stay applied), if an authorization or an operation
(the settlement reports are read from the operations) is in isk, until the operator decides
(README, Upgrading) and sets REMIT_STORED_ISK_AMOUNTS=read-as-hundredths
(`remit.storage.isk_amounts_guard`). A database with none passes, and nothing is recorded.

The downgrade changes nothing: this revision changed nothing either.

Revision ID: 0007_isk_amounts_in_hundredths
Revises: 0006_authorization_amounts
"""

from remit.storage.isk_amounts_guard import stop_on_stored_isk_amounts

revision = "0007_isk_amounts_in_hundredths"
down_revision = "0006_authorization_amounts"
branch_labels = None
depends_on = None

TABLES_WITH_AMOUNTS = ("authorizations", "operations")


def upgrade() -> None:
    stop_on_stored_isk_amounts("acquirer", TABLES_WITH_AMOUNTS, "acquirer migration 0007")


def downgrade() -> None:
    pass
