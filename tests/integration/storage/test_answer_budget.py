"""A page stops at its answer's byte budget, as the database counts each row's JSON text: the
rows within it, the first one whatever its size, and `has_more` when any row lies past them,
in either direction of paging. tests/e2e/test_pages_within_budget.py pages through lists of
the largest objects the API takes."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Final

import pytest
from sqlalchemy import Column, DateTime, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.storage.answer_budget import fetch_within, json_bytes

pytestmark = pytest.mark.anyio

_notes = Table(
    "answer_budget_notes",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
START: Final = datetime(2026, 1, 2, tzinfo=UTC)
WIDE: Final = "😀"
"""Four bytes of JSON text, as of UTF-8, for one character."""
SIZES: Final = {"n1": 1000, "n2": 10, "n3": 400, "n4": 10, "n5": 10}
"""Characters of each note, oldest first."""


@pytest.fixture
async def core_engine(core_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """The core database with a scratch table of notes, dropped again afterwards."""
    async with core_engine.begin() as db:
        await db.execute(text("DROP TABLE IF EXISTS answer_budget_notes"))
        await db.run_sync(lambda sync: _notes.create(sync))
        await db.execute(
            _notes.insert(),
            [
                {"id": note_id, "note": WIDE * size, "created_at": START + timedelta(seconds=n)}
                for n, (note_id, size) in enumerate(SIZES.items())
            ],
        )
    yield core_engine
    async with core_engine.begin() as db:
        await db.execute(text("DROP TABLE answer_budget_notes"))


async def _bytes(engine: AsyncEngine) -> dict[str, int]:
    """Each row's bytes as the budget counts them."""
    async with engine.begin() as db:
        rows = await db.execute(select(_notes.c.id, json_bytes(_notes)))
    return {str(row[0]): int(row[1]) for row in rows}


async def _page(
    engine: AsyncEngine, *, limit: int, budget_bytes: int, descending: bool = True
) -> tuple[list[str], bool]:
    async with engine.begin() as db:
        rows, has_more = await fetch_within(
            db,
            select(_notes),
            (_notes.c.created_at, _notes.c.id),
            descending=descending,
            limit=limit,
            budget_bytes=budget_bytes,
        )
    return [row.id for row in rows], has_more


async def test_a_page_holds_the_rows_within_its_budget_and_says_more_follow(
    core_engine: AsyncEngine,
) -> None:
    sizes = await _bytes(core_engine)
    assert sizes["n1"] > 4 * 1000  # the characters' bytes, not the characters, are counted
    exactly_two = sizes["n5"] + sizes["n4"]
    assert await _page(core_engine, limit=5, budget_bytes=exactly_two) == (["n5", "n4"], True)
    assert await _page(core_engine, limit=5, budget_bytes=exactly_two - 1) == (["n5"], True)
    whole = sum(sizes.values())
    assert await _page(core_engine, limit=5, budget_bytes=whole) == (
        ["n5", "n4", "n3", "n2", "n1"],
        False,
    )
    # The limit cuts first when the budget is wide: as a page without one.
    assert await _page(core_engine, limit=2, budget_bytes=whole) == (["n5", "n4"], True)


async def test_the_first_row_is_answered_whatever_its_size(core_engine: AsyncEngine) -> None:
    assert await _page(core_engine, limit=100, budget_bytes=1) == (["n5"], True)
    assert await _page(core_engine, limit=1, budget_bytes=1) == (["n5"], True)
    # The oldest row, the largest, alone and last: answered, nothing past it.
    assert await _page(core_engine, limit=100, budget_bytes=1, descending=False) == (["n1"], True)
    async with core_engine.begin() as db:
        await db.execute(_notes.delete().where(_notes.c.id != "n1"))
    assert await _page(core_engine, limit=100, budget_bytes=1) == (["n1"], False)


async def test_paging_backwards_keeps_the_rows_nearest_the_cursor(
    core_engine: AsyncEngine,
) -> None:
    sizes = await _bytes(core_engine)
    through_n3 = sizes["n1"] + sizes["n2"] + sizes["n3"]
    assert await _page(core_engine, limit=5, budget_bytes=through_n3, descending=False) == (
        ["n1", "n2", "n3"],
        True,
    )
