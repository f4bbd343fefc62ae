"""The lists a page embeds (a page of charges with their refunds, and what versions before
2022-11-15 embed: each PaymentIntent's charges, each Charge's refunds) are answered within a
byte budget, however large they are: the core answers the parents whose lists fit and names
those it left out, and the REST facade asks for those again until it has them all. Without it,
refunds with fat metadata made one answer larger than the facade receives: RESOURCE_EXHAUSTED,
a 500 that failed on every retry.

Scaled down: the facade's channel takes `RECEIVE_BYTES` (16 MiB in production) and the core's
budget is `BUDGET_BYTES` (4 MiB), so that a few hundred small refunds are enough."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.domain import KeyKind, Principal
from remit.grpcutil.errors import ErrorMappingInterceptor
from remit.payments.charges import RefundStatus
from remit.payments.grpc import PaymentsServicer, payment_intent_message
from remit.payments.service import PaymentsService
from remit.rest.app import build_app
from remit.rest.auth import Authenticator
from remit.rest.dependencies import Dependencies
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc
from tests.integration.payments.conftest import FakeMethods
from tests.integration.payments.test_payments_service import pay
from tests.integration.payments.test_related_calls_of_old_versions import (
    CountingInterceptor,
    Facade,
)
from tests.support.accounts import call_metadata
from tests.support.fake_network import FakeNetwork
from versions import LATEST_VERSION

pytestmark = pytest.mark.anyio

RECEIVE_BYTES = 192 * 1024
BUDGET_BYTES = 160 * 1024
CHARGES = 8
REFUNDS = 90
"""Each charge's refunds (with their metadata) take ~36 KB of an answer (~70 KB as the budget
counts them), all of them ~290 KB: more than the channel takes, while two charges' fit the
budget."""
REFUND_METADATA = {f"order_line_{n}": "x" * 40 for n in range(5)}
CHARGE_METADATA = {f"note_{n:02d}": "y" * 500 for n in range(50)}
"""At Stripe's limits: ~27 KB a charge, ~215 KB for all of them."""
BEFORE_LISTS_COLLAPSED = "2022-08-01"


@dataclass
class Platform:
    payments: PaymentsService
    stub: Any
    facade: Facade
    account_id: str

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return call_metadata(self.account_id)


@pytest.fixture
async def platform(
    core_engine: AsyncEngine, network: FakeNetwork, account_id: str
) -> AsyncIterator[Platform]:
    """The core with a budget of `BUDGET_BYTES`, behind the facade over a channel that takes
    `RECEIVE_BYTES`."""
    payments = PaymentsService(
        core_engine,
        network,
        FakeMethods(),
        present=payment_intent_message,
        embedded_bytes=BUDGET_BYTES,
    )
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    servicer = PaymentsServicer(payments, cast(Any, None), cast(Any, None))
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    counter = CountingInterceptor()
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_receive_message_length", RECEIVE_BYTES)],
        interceptors=[counter],
    )

    async def lookup(key: str) -> Principal | None:
        return Principal(account_id, "key_1", KeyKind.SECRET, False, LATEST_VERSION, False)

    stub = payments_pb2_grpc.PaymentsServiceStub(channel)
    deps = Dependencies(
        core_channel=channel,
        accounts=cast(Any, None),
        payments=stub,
        webhooks=cast(Any, None),
        ledger=cast(Any, None),
        authenticator=Authenticator(lookup),
        radar=cast(Any, None),
        vault_channel=cast(Any, None),
        vault=cast(Any, None),
    )
    transport = httpx.ASGITransport(app=build_app(deps))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://remit") as client:
            yield Platform(payments, stub, Facade(client, counter.calls), account_id)
    finally:
        await channel.close()
        await server.stop(0)


async def _charges_with_fat_refunds(
    engine: AsyncEngine, platform: Platform, *, fat_charges: bool = False
) -> dict[str, list[str]]:
    """`CHARGES` paid charges (their metadata at Stripe's limits if `fat_charges`), each with
    `REFUNDS` refunds of a cent with metadata, written straight to the database: by charge,
    their refunds' ids newest first."""
    made: dict[str, list[str]] = {}
    start = datetime.now(UTC)
    for n in range(CHARGES):
        intent = await pay(platform.payments, platform.account_id, f"fat-{n}", amount=10_000)
        charge_id = intent.latest_charge_id or ""
        ids = [f"re_{n}_{r:03d}" for r in range(REFUNDS)]
        async with engine.begin() as db:
            if fat_charges:
                await db.execute(
                    text("UPDATE charges SET metadata = CAST(:metadata AS jsonb) WHERE id = :id"),
                    {"metadata": json.dumps(CHARGE_METADATA), "id": charge_id},
                )
            await db.execute(
                text(
                    "INSERT INTO refunds (id, account_id, charge_id, payment_intent_id,"
                    " amount_minor, currency, status, metadata, created_at, updated_at)"
                    " VALUES (:id, :account_id, :charge_id, :intent_id, 1, 'usd', :status,"
                    " CAST(:metadata AS jsonb), :at, :at)"
                ),
                [
                    {"id": refund_id, "account_id": platform.account_id, "charge_id": charge_id,
                     "intent_id": intent.id, "status": RefundStatus.SUCCEEDED.value,
                     "metadata": json.dumps(REFUND_METADATA), "at": start + timedelta(seconds=r)}
                    for r, refund_id in enumerate(ids)
                ],
            )  # fmt: skip
        made[charge_id] = ids[::-1]
    return made


async def test_the_refunds_of_many_charges_come_in_answers_the_facade_can_take(
    core_engine: AsyncEngine, platform: Platform
) -> None:
    made = await _charges_with_fat_refunds(core_engine, platform)
    asking = list(made)
    found: dict[str, pb.RefundsOfCharge] = {}
    answers = 0
    while asking:
        reply = await platform.stub.ListRefundsOfCharges(
            pb.ListRefundsOfChargesRequest(charges=asking, limit=100), metadata=platform.metadata()
        )
        answers += 1
        assert reply.ByteSize() < RECEIVE_BYTES
        # Whole pages of the first charges asked; the rest named, to ask again.
        assert [page.charge for page in reply.pages] + list(reply.left_out) == asking
        assert reply.pages
        found.update((page.charge, page) for page in reply.pages)
        asking = list(reply.left_out)
    assert answers > 1
    assert {
        charge_id: ([r.id for r in page.data], page.has_more, page.total_count)
        for charge_id, page in found.items()
    } == {charge_id: (ids, False, REFUNDS) for charge_id, ids in made.items()}
    assert all(dict(r.metadata) == REFUND_METADATA for page in found.values() for r in page.data)

    # A page of charges with their refunds: those of the first charges that fit, the others
    # named (each charge's refunds whole, or none).
    listed = await platform.stub.ListCharges(
        pb.ListChargesRequest(limit=100), metadata=platform.metadata()
    )
    assert listed.refunds_left_out
    left_out = set(listed.refunds_left_out)
    for charge in listed.data:
        shown = [r.id for r in charge.refunds.data]
        assert shown == ([] if charge.id in left_out else made[charge.id])


async def test_a_page_of_charges_expanding_their_refunds_shows_them_all(
    core_engine: AsyncEngine, platform: Platform
) -> None:
    made = await _charges_with_fat_refunds(core_engine, platform)

    listed = await platform.facade.get(
        "/v1/charges", LATEST_VERSION, limit="100", **{"expand[]": "data.refunds"}
    )
    assert {
        charge["id"]: (
            [r["id"] for r in charge["refunds"]["data"]],
            charge["refunds"]["has_more"],
            charge["refunds"]["url"],
        )
        for charge in listed["data"]
    } == {
        charge_id: (ids, False, f"/v1/charges/{charge_id}/refunds")
        for charge_id, ids in made.items()
    }
    assert platform.facade.calls["ListCharges"] == 1
    assert platform.facade.calls["ListRefundsOfCharges"] > 1


async def test_a_page_of_intents_at_an_old_version_embeds_all_its_charges_and_refunds(
    core_engine: AsyncEngine, platform: Platform
) -> None:
    made = await _charges_with_fat_refunds(core_engine, platform, fat_charges=True)

    listed = await platform.facade.get("/v1/payment_intents", BEFORE_LISTS_COLLAPSED, limit="100")
    shown: dict[str, tuple[list[str], bool, int]] = {}
    for intent in listed["data"]:
        charges = intent["charges"]
        assert (len(charges["data"]), charges["has_more"], charges["total_count"]) == (1, False, 1)
        [charge] = charges["data"]
        assert charge["metadata"] == CHARGE_METADATA
        refunds = charge["refunds"]
        shown[charge["id"]] = (
            [r["id"] for r in refunds["data"]],
            refunds["has_more"],
            refunds["total_count"],
        )
    assert shown == {charge_id: (ids, False, REFUNDS) for charge_id, ids in made.items()}
    assert platform.facade.calls["ListChargesOfPaymentIntents"] > 1
    assert platform.facade.calls["ListRefundsOfCharges"] > 1


async def test_the_refunds_left_out_are_never_read(
    core_engine: AsyncEngine, platform: Platform
) -> None:
    """The database cuts the answer: the core reads the rows of the pages it answers, not every
    page asked before cutting them in memory."""
    made = await _charges_with_fat_refunds(core_engine, platform)
    read: list[int] = []

    def count(*args: Any) -> None:
        statement, cursor = str(args[2]), args[1]
        if "FROM refunds" in statement:
            read.append(cursor.rowcount)

    event.listen(core_engine.sync_engine, "after_cursor_execute", count)
    try:
        answer = await platform.payments.refunds_of_charges(
            platform.account_id, list(made), limit=100
        )
    finally:
        event.remove(core_engine.sync_engine, "after_cursor_execute", count)
    answered = len(answer.pages)
    assert 0 < answered < CHARGES
    assert list(answer.pages) + answer.left_out == list(made)
    assert read == [answered * REFUNDS]
