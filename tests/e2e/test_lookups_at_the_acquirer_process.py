"""Payments against the real `remit acquirer` process, which loses every response of Authorize,
Capture, Void and Refund after committing the operation: each is settled by looking its
reference up, which finds the operation the core sent (a partial capture's amount, a refund's,
an authorization with capture) and applies it, once. A capture whose look-ups cannot reach the
acquirer either is left at its recovery point, and the client's retry with the key finishes it,
still once.

The core runs in this process (no vault: `TrailNetwork` sends the test card to the acquirer as
the vault's forward would) and posts to the real ledger."""

import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.acquirer.service import AcquirerService
from remit.acquirer.tables import operations
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.ledger.service import LedgerService
from remit.ledger.tables import balance_transactions
from remit.payments.charges import RefundStatus
from remit.payments.domain import CaptureMethod, Status
from remit.payments.grpc import payment_intent_message
from remit.payments.ledger_postings import LedgerPostings
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import OutcomeUnknownError
from remit.payments.ports import HookChain
from remit.payments.service import Done, PaymentsService
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from tests.e2e.test_acquirer_process import _env, _wait_serving
from tests.integration.ledger.money_trail import (
    Trail,
    TrailNetwork,
    cancel,
    keyed,
    pay,
    refund,
    respond,
)
from tests.integration.payments.conftest import FakeMethods
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.own_platform(
        reason="runs `remit acquirer` alone on the databases and empties the core's and the "
        "acquirer's after each test"
    ),
]


class LookupsUnreachableAtFirst(TrailNetwork):
    """`TrailNetwork` whose next `unreachable_lookups` look-ups fail before reaching the
    acquirer, as in an outage."""

    def __init__(
        self, stub: "acquirer_pb2_grpc.AcquirerServiceAsyncStub", clock: FixedClock
    ) -> None:
        super().__init__(stub, clock)
        self.unreachable_lookups = 0

    async def _lookup(
        self, reference: str, expected: ExpectedOperation
    ) -> acquirer_pb2.Operation | None:
        if self.unreachable_lookups > 0:
            self.unreachable_lookups -= 1
            raise OutcomeUnknownError("UNAVAILABLE")
        return await super()._lookup(reference, expected)


@pytest.fixture
def losing_acquirer(databases: WorkerDatabases, tmp_path: Path) -> Iterator[str]:
    """The acquirer process, losing every response of a call that moves money; its target."""
    port = free_port()
    log_path = tmp_path / "acquirer.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "remit", "acquirer", "--acquirer-host", "127.0.0.1",
             "--acquirer-port", str(port), "--acquirer-lost-response-rate", "1"],
            env=_env(databases, tmp_path), stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_serving(f"127.0.0.1:{port}", process)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


async def _operations_of(engine: AsyncEngine, account_id: str) -> list[tuple[object, ...]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(operations.c.reference, operations.c.kind, operations.c.amount_minor)
            .where(operations.c.merchant_id == account_id)
            .order_by(operations.c.created_at)
        )
        return [tuple(row) for row in rows]


async def _balance_transactions(engine: AsyncEngine, account_id: str) -> list[tuple[object, ...]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(balance_transactions.c.type, balance_transactions.c.amount)
            .where(balance_transactions.c.account_id == account_id)
            .order_by(balance_transactions.c.created_at, balance_transactions.c.id)
        )
        return sorted(tuple(row) for row in rows)


async def test_lost_responses_are_settled_by_look_ups_once(
    losing_acquirer: str, core_engine: AsyncEngine, acquirer_engine: AsyncEngine
) -> None:
    clock = FixedClock(datetime.now(UTC))
    account_id = (await AccountsService(core_engine, clock).create_account()).account.id
    async with grpc.aio.insecure_channel(losing_acquirer) as channel:
        stub = acquirer_pb2_grpc.AcquirerServiceStub(channel)
        network = LookupsUnreachableAtFirst(stub, clock)
        payments = PaymentsService(
            core_engine,
            network,
            FakeMethods(),
            present=payment_intent_message,
            hooks=HookChain([LedgerPostings(clock)]),
            clock=clock,
        )
        ledger = LedgerService(core_engine, clock, stub)
        # The acquirer's service on its database, for the helpers; the calls go to the process.
        trail = Trail(clock, network, payments, ledger, AcquirerService(acquirer_engine, clock))

        held = await pay(trail, account_id, "held", 1000, capture=CaptureMethod.MANUAL)
        assert held.status is Status.REQUIRES_CAPTURE
        sale = await pay(trail, account_id, "sale", 800)
        assert sale.status is Status.SUCCEEDED
        released = await pay(trail, account_id, "released", 500, capture=CaptureMethod.MANUAL)
        await cancel(trail, account_id, "cancel", released.id)

        # The capture's response is lost and the acquirer cannot be reached to look it up.
        network.unreachable_lookups = 3
        capture = keyed(account_id, "capture", "CapturePaymentIntent")
        with pytest.raises(RemitError) as unavailable:
            await payments.capture_payment_intent(capture, held.id, 600, respond)
        assert unavailable.value.kind is ErrorKind.UNAVAILABLE
        # The client's retry with the key looks the capture up first, and finishes it.
        retried = await payments.capture_payment_intent(capture, held.id, 600, respond)
        assert isinstance(retried, Done)
        assert (retried.value.status, retried.value.amount_received_minor) == (
            Status.SUCCEEDED,
            600,
        )
        refund_id = await refund(trail, account_id, "refund", held.id, 250)
        assert (await payments.get_refund(account_id, refund_id)).status is RefundStatus.SUCCEEDED
        verified = await ledger.verify(account_id)

    charge_of = {
        intent.id: intent.latest_charge_id
        for intent in [
            await payments.get_payment_intent(account_id, i.id) for i in (held, sale, released)
        ]
    }
    held_charge, sale_charge, released_charge = (
        charge_of[held.id],
        charge_of[sale.id],
        charge_of[released.id],
    )
    # One operation per reference at the acquirer: nothing was sent twice.
    assert sorted(await _operations_of(acquirer_engine, account_id)) == sorted(
        [
            (held_charge, "authorize", 1000),
            (sale_charge, "authorize", 800),
            (released_charge, "authorize", 500),
            (f"{released_charge}_void", "void", 500),
            (f"{held_charge}_capture", "capture", 600),
            (refund_id, "refund", 250),
        ]
    )
    # And one balance transaction per capture and refund: nothing was recorded twice.
    assert await _balance_transactions(core_engine, account_id) == sorted(
        [("charge", 600), ("charge", 800), ("refund", -250)]
    )
    assert verified.ok, verified.differences
