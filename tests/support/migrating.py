"""Upgrading a database in a thread while the test holds what the upgrade must wait for."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from remit.storage.migrate import Tree, upgrade


@contextmanager
def upgrading_in_a_thread(kind: Tree, url: str, destination: str) -> Iterator[list[BaseException]]:
    """Upgrade `url` to `destination` in a thread for the block's duration. The block must let
    the upgrade go (end its lock) before it ends; leaving it waits for the upgrade to finish.
    The list holds what the upgrade raised, if anything."""
    failure: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(kind, url, destination)
        except BaseException as error:  # handed to the test's thread
            failure.append(error)

    migrator = threading.Thread(target=migrate)
    migrator.start()
    try:
        yield failure
    finally:
        migrator.join(timeout=30)
    assert not migrator.is_alive()
