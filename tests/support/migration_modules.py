"""A migration's module, loaded from its file as Alembic loads it (its name starts with a
digit, so it cannot be imported), for tests of what it defines."""

import importlib.util
from pathlib import Path
from types import ModuleType

import remit.storage

# Where remit.storage.migrate finds them.
MIGRATIONS = Path(remit.storage.__file__).parent / "migrations"


def migration_module(tree: str, revision: str) -> ModuleType:
    """The module of `tree`'s migration `revision` (its file name, `0059_account_...`)."""
    path = MIGRATIONS / tree / "versions" / f"{revision}.py"
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
