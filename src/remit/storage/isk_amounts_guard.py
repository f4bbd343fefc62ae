"""Stopping the upgrade of a database that holds isk amounts stored in whole krónur.

remit used to count isk in whole krónur; it now counts hundredths of a króna, as Stripe's API
does (`remit.core.currency`: `amount=500` is 5 kr). Nothing in a stored row says which unit it
was written in, so every isk amount stored before would be read as a hundredth of what it was:
a balance of 500 kr as 5 kr, and paid out so. Multiplying them by 100 is no step an upgrade
can take on its own: the ledger's postings are in its hash chain (and in the checkpoints kept
outside the database), the balances must stay the sums of the postings, and the acquirer's
records and settlement reports must keep agreeing with the core's. So a migration (core 0089,
acquirer 0007) stops the upgrade of a database holding any isk amount, naming the tables that
hold them (the migrations before it, each committed on its own, stay applied), until the
operator has decided what they become (README, Upgrading) and says so with
REMIT_STORED_ISK_AMOUNTS=read-as-hundredths. A database with none passes, and nothing is
recorded.

Each table is asked with an EXISTS, which stops at its first isk row. No index leads with the
currency, so a table without one is read through once, holding only ACCESS SHARE, which lets
every read and write through.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from remit.config import (
    ISK_AMOUNTS_READ_AS_HUNDREDTHS,
    STORED_ISK_AMOUNTS,
    ConfigError,
    stored_isk_amounts_read_as_hundredths,
)
from remit.storage.migration_stops import MigrationStoppedError

log = logging.getLogger("remit.storage.migrations")


def _holds_isk(table: str) -> bool:
    query = sa.select(
        sa.exists().where(sa.column("currency") == "isk").select_from(sa.table(table))
    )
    return bool(op.get_bind().execute(query).scalar_one())


def tables_holding_isk(tables: Sequence[str]) -> list[str]:
    """Those of `tables` (each with a `currency` column) that hold a row in isk, in order."""
    return [table for table in tables if _holds_isk(table)]


def _left_applied(migration: str) -> str:
    """What a stop leaves: nothing of this migration, but every migration before it, since
    each commits on its own and the databases migrate in order (`remit.databases.migrate`);
    the earlier version, which leaves a database a newer one migrated as it is, runs on that."""
    return (
        f"{migration[0].upper()}{migration[1:]} changed nothing; the migrations before it stay "
        "applied (each commits on its own, and the databases migrate in the order core, "
        "vault, acquirer), and the earlier version runs on that schema, leaving it as it is."
    )


def stop_on_stored_isk_amounts(database: str, tables: Sequence[str], migration: str) -> None:
    """Stop the migration (`MigrationStoppedError`, nothing of it applied; the migrations
    before it stay applied) if any of `tables` of the `database` ("core", "acquirer") holds an
    isk amount and the operator has not decided to read them as hundredths; `migration` names
    it for the README's note."""
    # Read first: a malformed setting stops the upgrade before any table is read.
    try:
        decided = stored_isk_amounts_read_as_hundredths()
    except ConfigError as error:
        raise MigrationStoppedError(f"{error}. {_left_applied(migration)}") from error
    found = tables_holding_isk(tables)
    if not found:
        return
    if decided:
        log.warning(
            "the %s database holds isk amounts stored in whole krónur (%s); as %s=%s says, "
            "they are read as hundredths of a króna from now on",
            database,
            ", ".join(found),
            STORED_ISK_AMOUNTS,
            ISK_AMOUNTS_READ_AS_HUNDREDTHS,
        )
        return
    raise MigrationStoppedError(
        f"The {database} database holds isk amounts ({', '.join(found)}) stored while remit "
        "counted isk in whole krónur. This version counts isk in hundredths of a króna, as "
        "Stripe's API does (amount=500 is 5 kr), so each of them would be read as a hundredth "
        "of what it was: a balance of 500 kr as 5 kr, and paid out so. Decide what they are "
        "to become before upgrading: with the earlier version, finish or cancel every isk "
        "payment and pay out every isk balance, so that only history is left, or convert the "
        "stored amounts yourself. Then run the upgrade again with "
        f"{STORED_ISK_AMOUNTS}={ISK_AMOUNTS_READ_AS_HUNDREDTHS}, which reads every isk amount "
        f"stored before as hundredths. README, Upgrading, {migration}, explains both and what "
        f"each leaves behind. {_left_applied(migration)}"
    )
