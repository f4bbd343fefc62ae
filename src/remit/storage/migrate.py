"""Alembic, driven from code: each database (core, vault, acquirer) has its own migration tree."""

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config

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
