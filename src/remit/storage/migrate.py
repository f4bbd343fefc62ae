"""Alembic, driven from code: each database (core, vault, acquirer) has its own migration tree."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, pool

from remit.storage.connecting import libpq_arguments
from remit.storage.embedded import to_sqlalchemy_url

Tree = Literal["core", "vault", "acquirer"]
TREES: tuple[Tree, ...] = ("core", "vault", "acquirer")
_MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(tree: Tree, url: str) -> Config:
    config = Config()
    config.set_main_option("path_separator", "os")
    config.set_main_option("script_location", str(_MIGRATIONS / tree))
    config.set_main_option("version_locations", str(_MIGRATIONS / tree / "versions"))
    # Alembic's ini interpolation treats '%' specially; URLs may contain percent-escapes.
    config.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def upgrade(tree: Tree, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(tree, url), revision)


@dataclass(frozen=True)
class SchemaRevisions:
    """Where a database's schema is (`current`: none if it was never migrated) and where this
    version of remit would take it (`head`); `known` says whether this version has every
    current revision (a newer version's migrations leave revisions it does not)."""

    current: tuple[str, ...]
    head: tuple[str, ...]
    known: bool

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.head)


def schema_revisions(tree: Tree, url: str) -> SchemaRevisions:
    """Read the database's revision; changes nothing and takes no migration lock."""
    config = alembic_config(tree, url)
    script = ScriptDirectory.from_config(config)
    engine = create_engine(
        to_sqlalchemy_url(url), poolclass=pool.NullPool, connect_args=libpq_arguments(url)
    )
    try:
        with engine.connect() as connection:
            current = tuple(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    try:
        known = all(script.get_revision(revision) is not None for revision in current)
    except CommandError:
        known = False
    return SchemaRevisions(current, tuple(script.get_heads()), known)
