"""Accounts stored with settings out of bounds are brought within them, each one logged.

Until this revision CreateAccount and UpdateAccountSettings stored any settings; they are now
checked when written (`remit.accounts.settings`). An account stored before with a negative fee
had every card payment fail after the network authorized it (the capture posting refused the
fee), and a delay too long for a date would have failed it too. Such an account
is repaired here rather than refused at payment time: refusing would keep its payments failing
until an operator acted, and its stuck payments (waiting at `authorization_done`) stuck.

Each setting is moved to the nearest value within its bounds, the reading closest to what was
stored: a negative fee becomes 0 (the fee the ledger now charges for it anyway, never the
platform paying the merchant), a fee or delay above its bound becomes the bound, a negative
delay 0 (its funds were due at once, and still are). A default currency written in capitals
is lowercased; one remit does not support becomes `usd`, the platform's default. Every account
changed is logged at WARNING with its settings before and after, for an operator to review
the pricing agreed with the merchant: no account had a valid setting changed, and none of the
out-of-bounds fees could ever have been charged.

Accounts are few (one per merchant): the out-of-bounds ones are read and updated in the
migration's transaction.

The downgrade changes nothing: the repaired settings are valid for the earlier version too.

Revision ID: 0059_account_settings_in_bounds
Revises: 0058_previous_attributes_by_key
"""

import logging

import sqlalchemy as sa
from alembic import op

from remit.accounts.settings import (
    MAX_AVAILABLE_DELAY_DAYS,
    MAX_FEE_FIXED_MINOR,
    MAX_FEE_PERCENT_BPS,
)
from remit.core.currency import SUPPORTED_CURRENCIES

revision = "0059_account_settings_in_bounds"
down_revision = "0058_previous_attributes_by_key"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_DEFAULT_CURRENCY = "usd"

_OUT_OF_BOUNDS = sa.text(
    "SELECT id, fee_percent_bps, fee_fixed_minor, available_delay_days, default_currency "
    "FROM accounts WHERE fee_percent_bps NOT BETWEEN 0 AND :bps "
    "OR fee_fixed_minor NOT BETWEEN 0 AND :fixed "
    "OR available_delay_days NOT BETWEEN 0 AND :days "
    "OR NOT default_currency = ANY(:currencies) ORDER BY id"
)
_REPAIR = sa.text(
    "UPDATE accounts SET fee_percent_bps = :bps, fee_fixed_minor = :fixed, "
    "available_delay_days = :days, default_currency = :currency WHERE id = :id"
)


def _within(value: int, highest: int) -> int:
    return min(max(value, 0), highest)


def _supported(currency: str) -> str:
    lowered = currency.lower()
    return lowered if lowered in SUPPORTED_CURRENCIES else _DEFAULT_CURRENCY


def upgrade() -> None:
    db = op.get_bind()
    rows = db.execute(
        _OUT_OF_BOUNDS,
        {
            "bps": MAX_FEE_PERCENT_BPS,
            "fixed": MAX_FEE_FIXED_MINOR,
            "days": MAX_AVAILABLE_DELAY_DAYS,
            "currencies": sorted(SUPPORTED_CURRENCIES),
        },
    ).all()
    for account_id, bps, fixed, days, currency in rows:
        repaired = {
            "bps": _within(bps, MAX_FEE_PERCENT_BPS),
            "fixed": _within(fixed, MAX_FEE_FIXED_MINOR),
            "days": _within(days, MAX_AVAILABLE_DELAY_DAYS),
            "currency": _supported(currency),
        }
        db.execute(_REPAIR, {"id": account_id, **repaired})
        log.warning(
            "account %s had settings out of bounds, now brought within them: fee_percent_bps "
            "%s -> %s, fee_fixed_minor %s -> %s, available_delay_days %s -> %s, "
            "default_currency %r -> %r",
            account_id,
            bps,
            repaired["bps"],
            fixed,
            repaired["fixed"],
            days,
            repaired["days"],
            currency,
            repaired["currency"],
        )


def downgrade() -> None:
    pass
