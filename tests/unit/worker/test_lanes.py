"""A worker's slots are shared out in lanes: the kinds that wait on the network (webhook
deliveries) in slots of their own, claimed fairly across accounts; every other kind (the
payment jobs) in the general ones, which deliveries never take."""

from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from remit.worker.jobs import Job
from remit.worker.runner import Lane, Worker


async def _handler(_db: AsyncConnection, _job: Job) -> None:
    return None


def _worker(**fields: object) -> Worker:
    engine = create_async_engine("postgresql+psycopg://unused/unused")
    handlers = {"payments.expire": _handler, "webhooks.deliver": _handler, "other": _handler}
    return Worker(engine=engine, handlers=handlers, **fields)  # type: ignore[arg-type]


def test_network_kinds_run_in_slots_of_their_own_claimed_fairly() -> None:
    worker = _worker(network_kinds=frozenset({"webhooks.deliver"}), network_slots=32)
    assert worker.lanes() == [
        Lane(kinds=["other", "payments.expire"], slots=8, fair=False),
        Lane(
            kinds=["webhooks.deliver"],
            slots=32,
            fair=True,
            claiming="claiming jobs of the delivery lane",
        ),
    ]


def test_without_network_kinds_every_kind_shares_the_general_slots() -> None:
    assert _worker().lanes() == [
        Lane(kinds=["other", "payments.expire", "webhooks.deliver"], slots=8, fair=False)
    ]


def test_a_network_kind_with_no_handler_gets_no_lane() -> None:
    worker = _worker(network_kinds=frozenset({"unhandled"}))
    assert worker.lanes() == [
        Lane(kinds=["other", "payments.expire", "webhooks.deliver"], slots=8, fair=False)
    ]
