"""Hot-path statements run on the psycopg connection underneath a SQLAlchemy unit of work.

SQLAlchemy Core spends about 250-290 µs of client CPU per statement on the payment path (cache
key, compiled-statement lookup, parameter and result processing through the greenlet bridge);
the same statement sent straight to psycopg costs about 80-100 µs (`python -m bench
statements`). The handful of statements every
payment runs are therefore written out once here, per table, and sent straight to the driver
connection of the caller's unit of work: same connection, same transaction, same commit or
rollback. psycopg prepares a statement on the server after it has been used a few times
(`prepare_threshold` in `remit.storage.engine`), so they are planned once per connection too.

A single-statement unit (`remit.storage.engine.single_statement`) hands these statements a
psycopg connection of its own instead (`Db` is either kind).

Inside `deferring`, writes whose answer nobody waits for (`Statement.defer`) are held on the
client and sent in one pipeline with the unit's next statement that needs an answer, or at the
end of the block: one round trip for all of them instead of one each. Whatever is sent on the
connection meanwhile, here or through SQLAlchemy, goes after them, so a unit always reads its
own writes. A write whose outcome must be checked checks itself on the server (`remit_require`,
core migration 0009_require): its failure fails the pipeline it travels in, and so the next
statement, or the COMMIT, never runs after it.

Everything else keeps using SQLAlchemy Core.
"""

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Table
from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]
# Where a statement runs: a SQLAlchemy unit of work (its driver connection is used), or a
# psycopg connection of `remit.storage.direct` (a single autocommitted statement).
Db = AsyncConnection | psycopg.AsyncConnection[Any]

_trace: ContextVar[list[str] | None] = ContextVar("remit_fastsql_trace", default=None)


@contextmanager
def traced(into: list[str] | None = None) -> Iterator[list[str]]:
    """Collect the SQL of every statement sent from here in the current context, in order
    (`into` lets a caller interleave them with statements it collects elsewhere). Tests use it
    to count a path's round trips."""
    seen = [] if into is None else into
    token = _trace.set(seen)
    try:
        yield seen
    finally:
        _trace.reset(token)


def _note(sql: str) -> None:
    seen = _trace.get()
    if seen is not None:
        seen.append(sql)


def driver(db: Db) -> "psycopg.AsyncConnection[Any]":
    """The psycopg connection of a started SQLAlchemy connection (no I/O, no greenlet), or
    the psycopg connection itself."""
    if isinstance(db, psycopg.AsyncConnection):
        return db
    connection = db.sync_connection
    if connection is None:
        # Not begun, or a kept connection's face after its unit ended (remit.storage.kept).
        raise RuntimeError("This unit of work is not running: it has not begun or has ended.")
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.AsyncConnection)
    return raw


def sqlalchemy_unit(db: Db) -> AsyncConnection:
    """`db` as a SQLAlchemy unit of work, for statements written with SQLAlchemy Core; a
    single-statement connection (`remit.storage.direct`) cannot run those."""
    if not isinstance(db, AsyncConnection):
        raise TypeError("SQLAlchemy Core statements need a SQLAlchemy unit of work")
    return db


# What a statement's own check raised by the server (`remit_require`, core migration 0009_require)
# means to the caller: SQLSTATE -> the error to raise instead, made from the message the check
# raised with (which may carry what the statement found, for the error to name).
Refusals = Mapping[str, Callable[[str], Exception]]


class _Deferred(NamedTuple):
    sql: str
    params: dict[str, object]
    refusals: Refusals


def _translated(error: psycopg.Error, refusals: Iterable[Refusals]) -> Exception | None:
    """The caller's error for a check the server refused (None: not such a refusal)."""
    for known in refusals:
        refused = known.get(error.sqlstate or "")
        if refused is not None:
            return refused(error.diag.message_primary or "")
    return None


# The writes a `deferring` block holds, per connection, in the order they were deferred.
_held: "WeakKeyDictionary[psycopg.AsyncConnection[Any], list[_Deferred]]" = WeakKeyDictionary()


@asynccontextmanager
async def deferring(db: Db, *, commit: bool = False) -> AsyncIterator[None]:
    """Hold `Statement.defer` writes on `db`'s connection until an answer is needed or the
    block ends (then they are sent, in one round trip). On an error the held writes are
    dropped: the unit of work rolls back. Nested blocks share the outer block's writes.

    `commit=True` is for a block that ends where its transaction ends
    (`remit.storage.engine.batched_unit`): the writes still held are sent with the COMMIT, in
    the same pipeline (a write that fails, or whose own check fails, aborts the pipeline
    before the COMMIT runs)."""
    connection = driver(db)
    if connection in _held:
        yield
        return
    held: list[_Deferred] = []
    _held[connection] = held
    try:
        yield
        if commit and held:
            await _pipelined(connection, held, _COMMIT, {})
        else:
            await send_held(connection)
    finally:
        _held.pop(connection, None)


_COMMIT = "COMMIT"


def holds(connection: "psycopg.AsyncConnection[Any]") -> bool:
    """Whether writes are held for `connection` (in a `deferring` block)."""
    return bool(_held.get(connection))


async def send_held(connection: "psycopg.AsyncConnection[Any]") -> None:
    """Send the writes held for `connection`, if any."""
    held = _held.get(connection)
    if held:
        await _pipelined(connection, held, None, {})


async def _pipelined(
    connection: "psycopg.AsyncConnection[Any]",
    held: list[_Deferred],
    sql: str | None,
    params: Mapping[str, object],
    refusals: Refusals | None = None,
) -> "psycopg.AsyncCursor[Row] | None":
    """The held writes, then `sql` if given, in one pipeline; returns `sql`'s cursor with its
    result fetched (rowcount set, rows buffered)."""
    writes = list(held)
    held.clear()
    answer = None
    try:
        async with connection.pipeline():
            for write in writes:
                await connection.cursor().execute(write.sql, write.params)
            if sql is not None:
                answer = connection.cursor(row_factory=dict_row)
                # COMMIT is never prepared; everything else is, once it recurs.
                await answer.execute(sql, params, prepare=False if sql is _COMMIT else None)
    except psycopg.Error as error:
        refused = _translated(error, [*(write.refusals for write in writes), refusals or {}])
        if refused is None:
            raise
        raise refused from error
    return answer


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Statement:
    """One SQL text with `%(name)s` placeholders; parameters named in `json` are sent as jsonb."""

    def __init__(
        self, sql: str, json: frozenset[str] = frozenset(), refusals: Refusals | None = None
    ) -> None:
        self.sql = sql
        self._json = json
        self._refusals: Refusals = refusals or {}

    def _params(self, params: Mapping[str, object]) -> dict[str, object]:
        if not self._json:
            return dict(params)
        return {
            name: Jsonb(value) if name in self._json and value is not None else value
            for name, value in params.items()
        }

    def _refusals_with(self, refusals: Refusals | None) -> Refusals:
        """The statement's refusals, and a call's own (for errors that name what it is about),
        which win."""
        return self._refusals if not refusals else {**self._refusals, **refusals}

    async def _answered(
        self, db: Db, params: Mapping[str, object], refusals: Refusals | None = None
    ) -> "psycopg.AsyncCursor[Row]":
        """This statement's cursor with its result in; writes held on the connection go first,
        in the same pipeline."""
        _note(self.sql)
        connection = driver(db)
        held = _held.get(connection)
        known = self._refusals_with(refusals)
        if held:
            answer = await _pipelined(connection, held, self.sql, self._params(params), known)
            assert answer is not None
            return answer
        cursor = connection.cursor(row_factory=dict_row)
        try:
            await cursor.execute(self.sql, self._params(params))
        except psycopg.Error as error:
            refused = _translated(error, [known])
            if refused is None:
                raise
            raise refused from error
        return cursor

    async def rows(self, db: Db, params: Mapping[str, object]) -> list[Row]:
        async with await self._answered(db, params) as cursor:
            return await cursor.fetchall()

    async def first(self, db: Db, params: Mapping[str, object]) -> Row | None:
        async with await self._answered(db, params) as cursor:
            return await cursor.fetchone()

    async def run(
        self, db: Db, params: Mapping[str, object], refusals: Refusals | None = None
    ) -> int:
        """Execute; return the number of rows the statement touched."""
        async with await self._answered(db, params, refusals) as cursor:
            return cursor.rowcount

    async def defer(
        self, db: Db, params: Mapping[str, object], refusals: Refusals | None = None
    ) -> None:
        """A write whose answer is not needed now: inside `deferring` it is held and sent with
        the next statement that needs one (or the block's end); outside, it runs at once. A
        write that must be checked checks itself on the server (see `Refusals`; `refusals`
        adds this call's own)."""
        held = _held.get(driver(db))
        if held is None:
            await self.run(db, params, refusals)
            return
        _note(self.sql)
        held.append(_Deferred(self.sql, self._params(params), self._refusals_with(refusals)))


class TableStatements:
    """Insert, fetch-by-key and update-by-key statements for one table, built once.

    Insert and update statements depend on which columns a caller writes; each distinct set of
    columns is rendered the first time it is used and then reused.
    """

    def __init__(self, table: Table, key: Sequence[str] = ("account_id", "id")) -> None:
        self._name = _quote(table.name)
        self._key = tuple(key)
        self._json = frozenset(
            column.name for column in table.columns if isinstance(column.type, JSON)
        )
        columns = ", ".join(_quote(column.name) for column in table.columns)
        where = " AND ".join(f"{_quote(name)} = %({name})s" for name in self._key)
        # Identifiers come from the table's own metadata, never from a request.
        self.select = Statement(f"SELECT {columns} FROM {self._name} WHERE {where}")  # noqa: S608
        self.select_for_update = Statement(f"{self.select.sql} FOR UPDATE")
        self._where = where
        self._inserts: dict[tuple[str, ...], Statement] = {}
        self._updates: dict[tuple[str, ...], Statement] = {}

    def insert(self, names: Sequence[str]) -> Statement:
        shape = tuple(names)
        statement = self._inserts.get(shape)
        if statement is None:
            columns = ", ".join(_quote(name) for name in shape)
            values = ", ".join(f"%({name})s" for name in shape)
            statement = Statement(
                f"INSERT INTO {self._name} ({columns}) VALUES ({values})",  # noqa: S608
                self._json,
            )
            self._inserts[shape] = statement
        return statement

    def update(self, names: Sequence[str]) -> Statement:
        """UPDATE of `names` for the row whose key columns equal the same-named parameters."""
        shape = tuple(names)
        statement = self._updates.get(shape)
        if statement is None:
            if set(shape) & set(self._key):
                raise ValueError("key columns are not updated")
            assignments = ", ".join(f"{_quote(name)} = %({name})s" for name in shape)
            statement = Statement(
                f"UPDATE {self._name} SET {assignments} WHERE {self._where}",  # noqa: S608
                self._json,
            )
            self._updates[shape] = statement
        return statement
