"""Read-only units of work end in COMMIT, never ROLLBACK.

psycopg forgets every prepared statement of a connection when that connection rolls back (and
sends DEALLOCATE ALL), so a read block opened with `engine.connect()`, which rolls back when it
closes, would throw away the statement plans that the hot path keeps reusing.
"""

import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[3] / "src" / "remit"
READ_BLOCK = re.compile(r"engine\.connect\(\)\s+as\s+db\b")


def test_no_service_opens_a_read_block_that_rolls_back() -> None:
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in sorted(SOURCE.rglob("*.py"))
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if READ_BLOCK.search(line)
    ]
    assert offenders == []


def test_the_pattern_finds_a_rolling_back_read_block() -> None:
    assert READ_BLOCK.search("        async with self._engine.connect() as db:")
    assert not READ_BLOCK.search("        async with self._engine.begin() as db:")
