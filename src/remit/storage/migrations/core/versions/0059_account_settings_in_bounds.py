"""Accounts stored with settings out of bounds are brought within them where that changes
nothing they were charged or paid, each one logged; where it would, the upgrade stops, naming
them, for an operator to decide.

Until this revision CreateAccount and UpdateAccountSettings stored any settings; they are now
checked when written (`remit.accounts.settings`). In the earlier version a capture's fee was
`fee_percent_bps` of the amount plus `fee_fixed_minor`, rounded once and capped at the amount
but not at 0, and the capture's posting refused a fee below 0, failing the payment after the
network had authorized it. Its funds were due `available_delay_days` after it, a date that
fails past the year 9999. The default currency only named the currency of an empty balance.

These are moved to the nearest value within their bounds, which books every capture the
earlier version booked as it did, and those it failed:
- a pricing with no part above 0 and one below (-100 bps, 0 fixed): each fee it computed was 0,
  booked, or below 0, refused; it becomes 0 and 0;
- a pricing of 100% or more with no part below 0: each fee it computed was the whole amount, as
  100% (its fixed part capped) still charges;
- a negative delay, whose funds were due at once (a date already past), as with 0; a delay that
  takes today past the year 9999, which failed every capture: it becomes 365;
- a default currency in capitals is lowercased; one remit does not support becomes `usd`.
Every account changed is logged at WARNING with its settings before and after.

The other settings out of bounds worked, and no value within bounds charges or pays as they
did: a pricing with one part above 0 and the other below (290 bps less 30 charged a fee on
each capture above about 10.50 USD, -10 bps plus 30 on each one below about 295 USD); a fixed
part above 99 999 999 with less than 100% (it charged the whole amount of a large capture in a
zero-decimal currency, of which the capped one charges less); a delay of more than 365 days
that still gives a date. Moving them would change what the merchant pays, or release funds
earlier than agreed, with no one deciding it. So the upgrade stops before changing anything,
naming each such account, why, and the statement that would give it the nearest values
within bounds. An operator agrees settings within bounds with the merchant, sets them while
the database is still at 0058 (with the earlier version's UpdateAccountSettings, which stores
any settings, or an UPDATE in the core database), and runs the upgrade again.

An earlier text of this revision moved those too: a database upgraded with it has each of
them in a WARNING line of the upgrade's log, to review (README, Upgrading).

Accounts are few (one per merchant): the out-of-bounds ones are read and updated in the
migration's transaction.

The downgrade changes nothing: the repaired settings are valid for the earlier version too.

Revision ID: 0059_account_settings_in_bounds
Revises: 0058_previous_attributes_by_key
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from remit.accounts.settings import (
    MAX_AVAILABLE_DELAY_DAYS,
    MAX_FEE_FIXED_MINOR,
    MAX_FEE_PERCENT_BPS,
)
from remit.core.currency import SUPPORTED_CURRENCIES
from remit.storage.migration_stops import MigrationStoppedError

revision = "0059_account_settings_in_bounds"
down_revision = "0058_previous_attributes_by_key"
branch_labels = None
depends_on = None

log = logging.getLogger("remit.storage.migrations")

_DEFAULT_CURRENCY = "usd"

# Enough to name in an error; once they are set, the next run names the rest.
_SHOWN_UNDECIDED = 20

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


@dataclass(frozen=True)
class _Stored:
    account_id: str
    bps: int
    fixed: int
    days: int
    currency: str


def _within(value: int, highest: int) -> int:
    return min(max(value, 0), highest)


def _supported(currency: str) -> str:
    lowered = currency.lower()
    return lowered if lowered in SUPPORTED_CURRENCIES else _DEFAULT_CURRENCY


def _pricing_kept_by_repair(bps: int, fixed: int) -> bool:
    """Whether the nearest pricing within bounds books every fee this one booked.

    The earlier version's fee was min(round(bps * amount + fixed), amount), refused below 0.
    With no part above 0 it was never above 0: those booked were 0, as (0, 0) books. With 100%
    or more and no part below 0 it was never below the amount: always the amount, as 100% is.
    Within bounds, nothing is repaired."""
    if 0 <= bps <= MAX_FEE_PERCENT_BPS and 0 <= fixed <= MAX_FEE_FIXED_MINOR:
        return True
    no_part_above_zero = bps <= 0 and fixed <= 0
    whole_amount = bps >= MAX_FEE_PERCENT_BPS and fixed >= 0
    return no_part_above_zero or whole_amount


def _days_to_the_last_date(today: date) -> int:
    """The longest delay the earlier version could add to `today` (Python's dates end with
    the year 9999; a capture's funds were due its delay after it)."""
    return (date.max - today).days


def _delay_kept_by_repair(days: int, today: date) -> bool:
    """Whether the nearest delay within bounds pays out as this one did: a negative delay was
    due at once, as 0 is, and one past the last date failed every capture from today on."""
    return days <= MAX_AVAILABLE_DELAY_DAYS or days > _days_to_the_last_date(today)


def _repaired(stored: _Stored) -> dict[str, object]:
    return {
        "bps": _within(stored.bps, MAX_FEE_PERCENT_BPS),
        "fixed": _within(stored.fixed, MAX_FEE_FIXED_MINOR),
        "days": _within(stored.days, MAX_AVAILABLE_DELAY_DAYS),
        "currency": _supported(stored.currency),
    }


def _why_undecided(stored: _Stored, today: date) -> list[str]:
    reasons = []
    if not _pricing_kept_by_repair(stored.bps, stored.fixed):
        reasons.append(
            f"pricing fee_percent_bps {stored.bps} with fee_fixed_minor {stored.fixed} charged "
            "fees that no pricing within bounds charges"
        )
    if not _delay_kept_by_repair(stored.days, today):
        reasons.append(
            f"available_delay_days {stored.days} held funds longer than the "
            f"{MAX_AVAILABLE_DELAY_DAYS} days within bounds"
        )
    return reasons


def _nearest_within_bounds(stored: _Stored) -> str:
    """The statement that gives the account the settings this revision would repair it to,
    for an operator to read (never run here): the values are integers, the id quoted."""
    repaired = _repaired(stored)
    quoted_id = stored.account_id.replace("'", "''")
    return (
        f"UPDATE accounts SET fee_percent_bps = {repaired['bps']}, fee_fixed_minor = "  # noqa: S608
        f"{repaired['fixed']}, available_delay_days = {repaired['days']} "
        f"WHERE id = '{quoted_id}';"
    )


def _refuse_undecided(undecided: list[tuple[_Stored, list[str]]]) -> None:
    shown = undecided[:_SHOWN_UNDECIDED]
    named = "; ".join(
        f"{stored.account_id}: {' and '.join(reasons)} (nearest within bounds: "
        f"{_nearest_within_bounds(stored)})"
        for stored, reasons in shown
    )
    more = f" (and {len(undecided) - len(shown)} more)" if len(undecided) > len(shown) else ""
    raise MigrationStoppedError(
        "Cannot bring these accounts' settings within bounds without changing what their "
        f"merchants pay or when they are paid: {named}{more}. Agree settings within bounds "
        f"with each merchant (fee_percent_bps 0 to {MAX_FEE_PERCENT_BPS}, fee_fixed_minor 0 to "
        f"{MAX_FEE_FIXED_MINOR}, available_delay_days 0 to {MAX_AVAILABLE_DELAY_DAYS}) and set "
        "them with the earlier version's UpdateAccountSettings, or with an UPDATE of the "
        "accounts table in the core database as above, then run the upgrade again. Nothing "
        "was changed."
    )


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
    found = [_Stored(*row) for row in rows]
    today = datetime.now(UTC).date()
    undecided = [(stored, why) for stored in found if (why := _why_undecided(stored, today))]
    if undecided:
        _refuse_undecided(undecided)
    for stored in found:
        repaired = _repaired(stored)
        db.execute(_REPAIR, {"id": stored.account_id, **repaired})
        log.warning(
            "account %s had settings out of bounds, now brought within them: fee_percent_bps "
            "%s -> %s, fee_fixed_minor %s -> %s, available_delay_days %s -> %s, "
            "default_currency %r -> %r",
            stored.account_id,
            stored.bps,
            repaired["bps"],
            stored.fixed,
            repaired["fixed"],
            stored.days,
            repaired["days"],
            stored.currency,
            repaired["currency"],
        )


def downgrade() -> None:
    pass
