"""What a successful delivery costs the worker (bench/README.md: webhook delivery is bound by
its statements): writes nobody waits for travel together (`remit.storage.fastsql.deferring`),
and the one SQLAlchemy statement it still builds, the read of everything an attempt needs, is
built once."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from remit.storage import fastsql
from tests.integration.webhooks.conftest import Bench, StartReceiver

pytestmark = pytest.mark.anyio


@contextmanager
def pipelines_sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The statements of every pipeline fastsql sends in this block (each one round trip), the
    first word or two of each statement."""
    sent: list[list[str]] = []
    original = fastsql._pipelined

    async def spy(connection: Any, held: Any, sql: str | None, *args: Any, **kwargs: Any) -> Any:
        statements = [write.sql for write in held] + ([sql] if sql is not None else [])
        sent.append([" ".join(statement.split()[:3]) for statement in statements])
        return await original(connection, held, sql, *args, **kwargs)

    monkeypatch.setattr(fastsql, "_pipelined", spy)
    yield sent


async def test_a_success_is_recorded_in_one_round_trip_and_its_slot_taken_in_one(
    bench: Bench, start_receiver: StartReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = await start_receiver()
    await bench.endpoint(receiver.url)
    await bench.record()
    with pipelines_sent(monkeypatch) as sent:
        assert await bench.worker.drain() == 1

    assert sent == [
        # The endpoint's row locked, the delivery unparked (if a run of its job parked it),
        # then a slot counted and taken.
        ["SELECT id FROM", "DELETE FROM webhook_parked", "INSERT INTO webhook_inflight"],
        # The delivery's row locked (its attempt is numbered under it), the delivery moved on,
        # the endpoint's success, the slot locked, then let go and handed to the next delivery
        # parked for one (if one is), and the attempt, numbered, the one answer waited for.
        [
            "SELECT 1 FROM",
            "UPDATE webhook_deliveries SET",
            "UPDATE webhook_endpoints SET",
            "SELECT 1 FROM",
            "WITH let_go AS",
            "INSERT INTO webhook_delivery_attempts",
        ],
    ]
    assert len(receiver.received) == 1


async def test_the_read_of_an_attempts_context_is_built_once(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    """Building that statement (some forty labelled columns, a subquery on an alias) cost more
    of the worker's CPU than running it: every delivery runs the same statement object, whose
    cache key SQLAlchemy keeps."""
    receiver = await start_receiver()
    await bench.endpoint(receiver.url)
    await bench.record()
    await bench.record()
    executed: list[object] = []

    def note(_connection: object, statement: object, *_: object) -> None:
        if "ep__url" in str(statement):
            executed.append(statement)

    event.listen(bench.engine.sync_engine, "before_execute", note)
    try:
        assert await bench.worker.drain() == 2
    finally:
        event.remove(bench.engine.sync_engine, "before_execute", note)

    first, second = executed
    assert first is second
