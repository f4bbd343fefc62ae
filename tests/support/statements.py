"""Counting the statements a code path sends, whichever way it sends them."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.fastsql import traced


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL of every statement sent in this block, in order: through SQLAlchemy on
    `engine`, and straight to the driver through remit.storage.fastsql."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        with traced(seen):
            yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
