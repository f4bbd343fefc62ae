"""The revisions a process checks its database against are the migrations Alembic runs: read
from the files' names, they must be the same chain with the same head."""

import pytest
from alembic.script import ScriptDirectory

from remit.storage.migrate import TREES, Tree, alembic_config
from remit.storage.schema_check import shipped_revisions


@pytest.mark.parametrize("tree", TREES)
def test_the_revisions_read_from_file_names_are_alembics_chain_in_order(tree: Tree) -> None:
    script = ScriptDirectory.from_config(alembic_config(tree, "postgresql://unused/unused"))
    chain = [revision.revision for revision in script.walk_revisions()]
    chain.reverse()  # walk_revisions goes from the head down
    assert shipped_revisions(tree) == tuple(chain)
    assert script.get_heads() == [shipped_revisions(tree)[-1]]
