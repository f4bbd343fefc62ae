"""A periodic task that walks a whole data set runs in one worker copy at a time."""

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.worker.alone import lock_key, run_alone

pytestmark = pytest.mark.anyio


async def test_a_second_copy_skips_its_turn_while_the_first_runs(core_engine: AsyncEngine) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []

    async def long_task() -> None:
        runs.append("first")
        inside.set()
        await release.wait()

    async def second_task() -> None:
        runs.append("second")

    first = asyncio.create_task(run_alone(core_engine, "sweep", long_task))
    await inside.wait()
    assert await run_alone(core_engine, "sweep", second_task) is False
    # Another task's lock is its own.
    assert await run_alone(core_engine, "other-task", second_task) is True
    release.set()
    assert await first is True
    assert runs == ["first", "second"]


async def test_the_lock_is_released_after_the_task_and_after_its_failure(
    core_engine: AsyncEngine,
) -> None:
    async def failing() -> None:
        raise RuntimeError("the vault is unreachable")

    with pytest.raises(RuntimeError):
        await run_alone(core_engine, "sweep", failing)
    ran: list[int] = []

    async def task() -> None:
        ran.append(1)

    assert await run_alone(core_engine, "sweep", task) is True
    assert await run_alone(core_engine, "sweep", task) is True
    assert ran == [1, 1]


def test_lock_keys_are_stable_and_fit_postgresql_int4() -> None:
    assert lock_key("vault-unreferenced-card-sweep") == lock_key("vault-unreferenced-card-sweep")
    assert lock_key("a") != lock_key("b")
    for name in ("", "a", "vault-unreferenced-card-sweep", "x" * 200):
        assert -(2**31) <= lock_key(name) < 2**31


async def test_a_task_cancelled_at_shutdown_releases_the_lock(core_engine: AsyncEngine) -> None:
    inside = asyncio.Event()

    async def never_ends() -> None:
        inside.set()
        await asyncio.Event().wait()

    running = asyncio.create_task(run_alone(core_engine, "sweep", never_ends))
    await inside.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    ran: list[int] = []

    async def task() -> None:
        ran.append(1)

    assert await run_alone(core_engine, "sweep", task) is True
    assert ran == [1]
