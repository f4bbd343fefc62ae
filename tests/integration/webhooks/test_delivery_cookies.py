"""Deliveries keep no cookies: the HTTP client is shared by every account's deliveries, so a
cookie one merchant's receiver sets would be sent to another's on the same host."""

import pytest

from remit.accounts.service import AccountsService
from remit.webhooks.outbox import record_event
from tests.integration.webhooks.conftest import Bench, StartReceiver
from tests.support.receiver import Reply

pytestmark = pytest.mark.anyio


async def test_a_cookie_a_receiver_sets_is_never_sent_back(
    bench: Bench, start_receiver: StartReceiver
) -> None:
    set_cookie = {"Set-Cookie": "session=merchant-a; Path=/; Max-Age=3600"}
    receiver = await start_receiver(lambda _: Reply(headers=set_cookie))
    # By name: a cookie jar keeps no cookie an IP address's server sets.
    url = receiver.url.replace("127.0.0.1", "localhost")
    await bench.endpoint(url)
    other = (await AccountsService(bench.engine, bench.clock).create_account()).account.id
    await bench.service.create_endpoint(other, url=url, enabled_events=["*"])

    await bench.record()
    await bench.worker.drain()
    await bench.record()
    async with bench.engine.begin() as db:
        await record_event(db, account_id=other, type="customer.created",
                           data_object={"id": "cus_9", "object": "customer"},
                           now=bench.clock.now())  # fmt: skip
    await bench.worker.drain()

    assert len(receiver.received) == 3
    assert [r.headers.get("Cookie") for r in receiver.received] == [None, None, None]
