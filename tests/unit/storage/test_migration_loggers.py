"""Every migration that logs logs to one logger, so an operator filtering or raising the level
of what an upgrade reports (a row repaired, a duplicate removed) catches all of it.

Read from the sources: a migration's module is loaded by alembic under a name of its own, so
`__name__` would not say which logger it uses."""

import ast
from pathlib import Path

import remit.storage

MIGRATIONS_LOGGER = "remit.storage.migrations"
# Where remit.storage.migrate finds them.
MIGRATIONS = Path(remit.storage.__file__).parent / "migrations"


def _logger_names(source: Path) -> list[object]:
    """The first argument of each `logging.getLogger(...)` call (None: called without one)."""
    names: list[object] = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
        ):
            argument = node.args[0] if node.args else None
            names.append(argument.value if isinstance(argument, ast.Constant) else argument)
    return names


def test_every_migration_that_logs_uses_the_migrations_logger() -> None:
    found = {
        str(path.relative_to(MIGRATIONS)): names
        for path in sorted(MIGRATIONS.glob("*/versions/*.py"))
        if (names := _logger_names(path))
    }
    assert found, "no migration logs: this test would check nothing"
    assert {path: names for path, names in found.items() if names != [MIGRATIONS_LOGGER]} == {}
