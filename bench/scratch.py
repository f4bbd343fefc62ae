"""A throwaway embedded PostgreSQL with one migrated database, for benchmarks that need only
a database."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from remit.storage.embedded import start_cluster
from remit.storage.migrate import Tree, upgrade


@contextmanager
def scratch_database(name: str, tree: Tree = "core") -> Iterator[str]:
    """The URL of database `name`, migrated with `tree`, on a cluster deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"remit-bench-{name}-") as workdir:
        cluster = start_cluster(Path(workdir) / "pg", on_last_exit="delete")
        try:
            cluster.ensure_database(name)
            url = cluster.url(name)
            upgrade(tree, url)
            yield url
        finally:
            cluster.stop()
