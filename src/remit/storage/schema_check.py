"""Whether a process's database is migrated far enough for it to start.

A process started on a database whose migrations were not applied, or not all of them, would
report itself ready and then fail requests on a missing table or column, with a traceback in
its log. So each checks, as it starts, the revision its database records against the
migrations this version of remit ships, and refuses to start (one line, exit 2) when the
database has no remit schema or is behind them. A database at a revision this version does
not know is ahead of it: a process of the earlier version, still running while an upgrade
rolls through, works on the newer schema (the upgrade notes in README say where it may not),
so that is no refusal. But a revision of another remit database's migrations is not ahead:
the setting names that other database (DATABASE_URL and VAULT_DATABASE_URL swapped, say), and
that is refused, naming the setting.

The revisions are read from the migration files' text (their `revision` lines), not
through Alembic, which would import every migration module at every start: each tree is one
chain of `down_revision` links (`tests/unit/storage/test_schema_check.py` holds this reading
to Alembic's own).
"""

import re
from functools import cache
from pathlib import Path
from typing import Final

from remit.config import ConfigError
from remit.storage.embedded import to_sqlalchemy_url
from remit.storage.reachability import CONNECT_TIMEOUT_S, PlatformDatabase

_MIGRATIONS: Final = Path(__file__).parent / "migrations"
_REVISION_FILE: Final = re.compile(r"^(\d{4})_\w+\.py$")
_REVISION_LINE: Final = re.compile(r'^revision = "([^"]+)"$', re.MULTILINE)
_DOWN_REVISION_LINE: Final = re.compile(r'^down_revision = ("[^"]+"|None)$', re.MULTILINE)
_SETTING_OF_TREE: Final = {
    "core": "DATABASE_URL",
    "vault": "VAULT_DATABASE_URL",
    "acquirer": "ACQUIRER_DATABASE_URL",
}


@cache
def shipped_revisions(tree: str) -> tuple[str, ...]:
    """The revision ids of `tree`'s migrations, oldest first (following each one's
    `down_revision`); the last is its head."""
    after: dict[str | None, str] = {}
    for path in (_MIGRATIONS / tree / "versions").iterdir():
        if _REVISION_FILE.match(path.name):
            text = path.read_text()
            revision, down = _REVISION_LINE.search(text), _DOWN_REVISION_LINE.search(text)
            if revision is None or down is None:
                raise RuntimeError(f"{path} does not declare its revision and down_revision")
            after[None if down.group(1) == "None" else down.group(1).strip('"')] = revision.group(1)
    chain: list[str] = []
    current = after.get(None)
    while current is not None:
        chain.append(current)
        current = after.get(current)
    return tuple(chain)


def swapped_setting(database: PlatformDatabase, recorded: tuple[str, ...]) -> str | None:
    """One line when a revision `database` records belongs to another remit database's
    migrations (its setting names that database, as when two settings are swapped), naming
    the setting; None otherwise. A revision no remit tree knows is a newer version's."""
    for revision in recorded:
        for tree, setting in _SETTING_OF_TREE.items():
            if tree != database.name and revision in shipped_revisions(tree):
                return (
                    f"{database.described()} is at schema revision {revision}, one of the "
                    f"{tree} database's: {database.setting} seems to name the {tree} database "
                    f"(are {database.setting} and {setting} swapped?); correct {database.setting}"
                )
    return None


def recorded_revision(database: PlatformDatabase) -> str | None:
    """The revision `database` records (None: no remit schema)."""
    import psycopg

    from remit.storage.connecting import libpq_arguments

    url = to_sqlalchemy_url(database.url).replace("postgresql+psycopg://", "postgresql://", 1)
    libpq = libpq_arguments(url, connect_timeout_s=CONNECT_TIMEOUT_S)
    with psycopg.connect(url, autocommit=True, **libpq) as connection:
        table = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
        if table is None or table[0] is None:
            return None
        row = connection.execute("SELECT max(version_num) FROM alembic_version").fetchone()
    return None if row is None or row[0] is None else str(row[0])


def refuse_unless_migrated(database: PlatformDatabase) -> None:
    """A `ConfigError` naming `database` (never its password) when it has no remit schema, is
    behind this version's migrations, or is another remit database (its revision is one of
    another tree's); nothing when it is at them or ahead of them."""
    revisions = shipped_revisions(database.name)
    recorded = recorded_revision(database)
    again = "run `remit migrate` with the same settings, then start it again"
    if recorded is None:
        raise ConfigError(f"{database.described()} is not migrated: {again}")
    swapped = swapped_setting(database, (recorded,))
    if swapped is not None:
        raise ConfigError(swapped)
    if recorded in revisions and recorded != revisions[-1]:
        raise ConfigError(
            f"{database.described()} is at schema revision {recorded}, behind this version's "
            f"{revisions[-1]}: {again}"
        )
