"""`remit held-requests` shows an operator the requests the completer cannot finish, and retries
one on demand.

A capture whose response is lost while the acquirer holds another operation under its reference
(`lookup_expectations`) stays at its recovery point: the completer's tries are refused, and each
is counted and its failure recorded on the key, with the reference, the acquirer's operation and
the fields that differ. Listing shows that and changes nothing about the payment. A retry while
the acquirer still holds the other record fails the same way; once it holds what was sent, a
retry finishes the capture, once. A request the acquirer cannot be reached for shows its own
failure.

Against the real acquirer over gRPC and the real ledger (`money_trail`); the core's
PaymentsService is served in this process, and `remit` runs in it too, off its event loop.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.tables import operations
from remit.cli import main
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.customers.service import CustomersService
from remit.grpcutil.errors import ErrorMappingInterceptor, detail_from_rpc_error
from remit.payment_methods.service import PaymentMethodsService
from remit.payment_methods.vault_client import CardVault
from remit.payments.domain import CaptureMethod, Status
from remit.payments.grpc import PaymentsServicer
from remit.payments.idempotency import RecoveryPoint, digest, lease
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.network import OutcomeUnknownError
from remit.payments.tables import charges, idempotency_keys, payment_intents
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.payments.v1 import payments_pb2 as pb
from remit_api.payments.v1 import payments_pb2_grpc
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.money_trail import Trail, TrailNetwork, keyed, money_trail, pay
from tests.integration.ledger.money_trail import respond as respond_with_id
from tests.integration.payments.test_lookup_expectations import (
    altered_trail,
    ledger_of,
    operations_under,
    other_amount,
)
from tests.support.ports import free_port
from tests.support.postgres import WorkerDatabases

pytestmark = pytest.mark.anyio

# Past a key's lease and the completer's backoff after a try at most a few leases old.
COMPLETER_STEP_S = 4 * lease().total_seconds()


@pytest.fixture
def cli_env(databases: WorkerDatabases, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", databases.core_url)
    monkeypatch.setenv("VAULT_DATABASE_URL", databases.vault_url)
    monkeypatch.setenv("ACQUIRER_DATABASE_URL", databases.acquirer_url)
    monkeypatch.setenv("REMIT_DATA_DIR", str(tmp_path))
    # The core the command calls is served in this process, without the token check.
    monkeypatch.setenv("REMIT_INTERNAL_AUTH", "off")


def servicer_of(trail_engine: AsyncEngine, trail: Trail) -> PaymentsServicer:
    """The core's PaymentsService on the trail's payments. The held-request RPCs never reach
    customers' cards: no vault."""
    methods = PaymentMethodsService(trail_engine, cast(CardVault, None))
    return PaymentsServicer(trail.payments, CustomersService(trail_engine, methods), methods)


@asynccontextmanager
async def core_serving(
    servicer: PaymentsServicer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator["payments_pb2_grpc.PaymentsServiceAsyncStub"]:
    """The servicer on a port the command finds in REMIT_CORE_PORT; a stub to call it."""
    server = grpc.aio.server(interceptors=[ErrorMappingInterceptor()])
    payments_pb2_grpc.add_PaymentsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    monkeypatch.setenv("REMIT_CORE_PORT", str(port))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield payments_pb2_grpc.PaymentsServiceStub(channel)
    finally:
        await server.stop(0)


async def remit(*args: str) -> int:
    """`remit ARGS` in this process, off the event loop that serves the core it calls; its exit
    code (argparse's refusals exit through SystemExit)."""

    def run() -> int:
        try:
            return main(list(args))
        except SystemExit as stopped:
            return stopped.code if isinstance(stopped.code, int) else 1

    return await asyncio.to_thread(run)


def iso(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


async def payment_state(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine, account_id: str
) -> tuple[object, ...]:
    """Everything of the account's payments: keys, intents, charges, ledger, acquirer."""
    async with core_engine.connect() as db:
        rows = []
        for table in (idempotency_keys, payment_intents, charges):
            query = select(table).where(table.c.account_id == account_id)
            rows.append(sorted(tuple(row) for row in await db.execute(query)))
    async with acquirer_engine.connect() as db:
        held = sorted(tuple(row) for row in await db.execute(select(operations)))
    return (*rows, await ledger_of(core_engine, account_id), held)


async def operation_id_under(acquirer_engine: AsyncEngine, reference: str) -> str:
    async with acquirer_engine.connect() as db:
        query = select(operations.c.id).where(operations.c.reference == reference)
        return str((await db.execute(query)).scalar_one())


async def test_a_capture_the_acquirer_holds_otherwise_is_listed_retried_and_then_finished_once(
    cli_env: None,
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with altered_trail(core_engine, acquirer_engine) as (trail, network):
        held = await pay(trail, account_id, "held", 1000, capture=CaptureMethod.MANUAL)
        charge_id = str(held.latest_charge_id)
        reference = f"{charge_id}_capture"
        servicer = servicer_of(core_engine, trail)

        # The capture's response is lost; its look-up finds a capture of another amount.
        network.lose.append("capture")
        network.alteration = other_amount
        began = trail.clock.now()
        with pytest.raises(RemitError) as refused:
            await trail.payments.capture_payment_intent(
                replace(
                    keyed(account_id, "capture", "CapturePaymentIntent"), request_id="req_1Capture"
                ),
                held.id,
                600,
                respond_with_id,
            )
        assert refused.value.kind is ErrorKind.INTERNAL
        operation_id = await operation_id_under(acquirer_engine, reference)

        # The completer tries twice (the second once its backoff, doubled, is over), and is
        # refused each time.
        for step in (COMPLETER_STEP_S, 2 * COMPLETER_STEP_S):
            trail.clock.advance(step)
            assert await trail.payments.complete_abandoned(servicer.resume) == 1
        last_try = trail.clock.now()
        trail.clock.advance(60)

        async with core_serving(servicer, monkeypatch):
            before = await payment_state(core_engine, acquirer_engine, account_id)
            assert await remit("held-requests", "list", "--older-than", "0", "--json") == 1
            listed = json.loads(capsys.readouterr().out)
            assert await remit("held-requests", "list", "--older-than", "0") == 1
            table = capsys.readouterr().out
            # Younger than an hour, and of another account: nothing to show.
            assert await remit("held-requests", "list", "--older-than", "60") == 0
            none_that_old = capsys.readouterr().out
            assert await remit("held-requests", "list", "--account", "acct_1Else") == 0
            capsys.readouterr()
            assert await payment_state(core_engine, acquirer_engine, account_id) == before

            mismatch = {
                "at": iso(last_try),
                "code": "network_record_mismatch",
                "message": (
                    f"the acquirer holds operation {operation_id} under {reference}, which is "
                    "not the operation this request sent: amount differs; nothing was applied"
                ),
                "reference": reference,
                "operation": operation_id,
                "differing_fields": ["amount"],
            }
            assert listed == {
                "as_of": iso(trail.clock.now()),
                "data": [
                    {
                        "account_id": account_id,
                        "idempotency_key": "capture",
                        "request_id": "req_1Capture",
                        "endpoint": "CapturePaymentIntent",
                        "recovery_point": "attempt_created",
                        "created": iso(began),
                        "age_seconds": int((trail.clock.now() - began).total_seconds()),
                        "last_run": iso(last_try),
                        "in_progress": False,
                        "payment_intent": held.id,
                        "charge": charge_id,
                        "refund": None,
                        "completer_attempts": 2,
                        "last_failure": mismatch,
                    }
                ],
                "has_more": False,
            }
            header, rule, row, failure = table.splitlines()
            assert header.split()[:4] == ["age", "account", "endpoint", "recovery"]
            assert set(rule) == {"-"}
            assert row.split()[1:5] == [account_id, "CapturePaymentIntent", "attempt_created", "2"]
            assert row.split()[-3:] == [charge_id, "req_1Capture", "capture"]
            assert failure.strip() == f"network_record_mismatch: {mismatch['message']}"
            assert none_that_old == "no request unfinished for 60 minutes or more\n"

            # Retried while the acquirer still holds the other capture: refused again.
            assert await remit("held-requests", "retry", account_id, "capture") == 1
            still = capsys.readouterr().out
            assert still.startswith(
                f"still held: CapturePaymentIntent under capture of {account_id}, at "
                "attempt_created after 3 tries; network_record_mismatch: the acquirer holds"
            )
            intent = await trail.payments.get_payment_intent(account_id, held.id)
            assert (intent.status, intent.amount_received_minor) == (Status.REQUIRES_CAPTURE, 0)

            # Once the acquirer holds the capture that was sent, a retry finishes it.
            network.alteration = None
            assert await remit("held-requests", "retry", account_id, "capture", "--json") == 0
            finished = json.loads(capsys.readouterr().out)
            assert finished["outcome"] == "finished"
            assert finished["held_request"]["recovery_point"] == "finished"
            assert finished["held_request"]["completer_attempts"] == 4
            assert await remit("held-requests", "list", "--older-than", "0") == 0
            assert capsys.readouterr().out == "no request unfinished for 0 minutes or more\n"
            # A finished request is not retried again.
            assert await remit("held-requests", "retry", account_id, "capture") == 2
            assert capsys.readouterr().err.splitlines()[-1] == (
                "remit held-requests retry: The request under 'capture' is finished; there is "
                "nothing to retry."
            )

        intent = await trail.payments.get_payment_intent(account_id, held.id)
        assert (intent.status, intent.amount_received_minor) == (Status.SUCCEEDED, 600)
        assert await operations_under(acquirer_engine, reference) == [("capture", 600, True)]


class AcquirerOutOfReach(TrailNetwork):
    """`TrailNetwork` whose look-ups never reach the acquirer, as in a long outage."""

    async def _lookup(
        self, reference: str, expected: ExpectedOperation
    ) -> acquirer_pb2.Operation | None:
        raise OutcomeUnknownError("UNAVAILABLE")


async def test_a_capture_the_completer_cannot_settle_shows_why(
    cli_env: None,
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def out_of_reach(
        stub: "acquirer_pb2_grpc.AcquirerServiceAsyncStub", clock: FixedClock
    ) -> TrailNetwork:
        return AcquirerOutOfReach(stub, clock)

    async with money_trail(core_engine, acquirer_engine, FixedClock(T0), out_of_reach) as trail:
        held = await pay(trail, account_id, "held", 1000, capture=CaptureMethod.MANUAL)
        trail.network.lose.append("capture")
        with pytest.raises(RemitError) as unavailable:
            await trail.payments.capture_payment_intent(
                keyed(account_id, "capture", "CapturePaymentIntent"), held.id, 600, respond_with_id
            )
        assert unavailable.value.kind is ErrorKind.UNAVAILABLE
        servicer = servicer_of(core_engine, trail)
        trail.clock.advance(COMPLETER_STEP_S)
        assert await trail.payments.complete_abandoned(servicer.resume) == 1
        # Past the default threshold.
        trail.clock.advance(timedelta(minutes=20).total_seconds())

        async with core_serving(servicer, monkeypatch):
            before = await payment_state(core_engine, acquirer_engine, account_id)
            assert await remit("held-requests", "list", "--json") == 1
            (listed,) = json.loads(capsys.readouterr().out)["data"]
            assert await payment_state(core_engine, acquirer_engine, account_id) == before

    assert (listed["idempotency_key"], listed["completer_attempts"]) == ("capture", 1)
    assert listed["age_seconds"] == COMPLETER_STEP_S + 20 * 60
    failure = listed["last_failure"]
    assert (failure["code"], failure["reference"], failure["differing_fields"]) == (
        "unavailable",
        None,
        [],
    )
    assert (
        failure["message"] == "The card network is not responding right now. Please retry shortly."
    )


async def test_the_command_refuses_bad_arguments_in_one_line(
    cli_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before the core is asked (nothing listens at its port), or by argparse."""
    monkeypatch.setenv("REMIT_CORE_PORT", str(free_port()))
    refusals = {
        ("list", "--older-than", "-1"): (
            "--older-than must be between 0 and 5256000 minutes, got -1"
        ),
        ("list", "--older-than", "5256001"): (
            "--older-than must be between 0 and 5256000 minutes, got 5256001"
        ),
        ("list", "--limit", "0"): "--limit must be between 1 and 100, got 0",
        ("list", "--limit", "101"): "--limit must be between 1 and 100, got 101",
        ("list", "--older-than", "soon"): "argument --older-than: invalid int value: 'soon'",
        ("retry", "acct_1Only"): "the following arguments are required: KEY",
        ("frobnicate",): "argument held_requests_command: invalid choice: 'frobnicate'",
    }
    for args, message in refusals.items():
        assert await remit("held-requests", *args) == 2, args
        (err,) = capsys.readouterr().err.splitlines()
        assert err.startswith("remit held-requests"), err
        assert message in err, (args, err)


async def test_the_rpcs_refuse_what_they_cannot_do_and_drop_a_request_that_sent_nothing(
    cli_env: None,
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with money_trail(core_engine, acquirer_engine, FixedClock(T0)) as trail:
        servicer = servicer_of(core_engine, trail)
        now = trail.clock.now()
        async with core_engine.begin() as db:
            # One sent without an idempotency key, under the key remit made up for it: only
            # its request id names it.
            for key, locked_until, request_id in (
                ("remit-auto-never", None, "req_1Never"),
                ("running", now + lease(), None),
            ):
                await db.execute(
                    idempotency_keys.insert().values(
                        account_id=account_id,
                        key=key,
                        request_id=request_id,
                        endpoint="CreatePaymentIntent",
                        request_digest=digest("CreatePaymentIntent", b""),
                        request_body=b"",
                        recovery_point=RecoveryPoint.STARTED.value,
                        locked_until=locked_until,
                        created_at=now - timedelta(hours=1),
                        last_run_at=now - timedelta(hours=1),
                        owner="a-request",
                    )
                )
        async with core_serving(servicer, monkeypatch) as stub:

            async def refused(call: Any) -> tuple[grpc.StatusCode, str]:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                return error.value.code(), str(error.value.details())

            list_call, retry = stub.ListHeldRequests, stub.RetryHeldRequest
            for bad_list in (
                pb.ListHeldRequestsRequest(older_than_seconds=-1),
                pb.ListHeldRequestsRequest(older_than_seconds=10**12),
                pb.ListHeldRequestsRequest(limit=101),
            ):
                code, _ = await refused(list_call(bad_list))
                assert code is grpc.StatusCode.INVALID_ARGUMENT, bad_list
            code, _ = await refused(retry(pb.RetryHeldRequestRequest(idempotency_key="k")))
            assert code is grpc.StatusCode.INVALID_ARGUMENT

            def retry_of(key: str) -> pb.RetryHeldRequestRequest:
                return pb.RetryHeldRequestRequest(account_id=account_id, idempotency_key=key)

            code, _ = await refused(retry(retry_of("nope")))
            assert code is grpc.StatusCode.NOT_FOUND
            # One being worked on right now is refused only until its try is over: to be
            # retried later, as a key in use is (ABORTED, should_retry), and the command exits
            # 75, not 2 ("running it again will not help").
            with pytest.raises(grpc.aio.AioRpcError) as in_progress:
                await retry(retry_of("running"))
            assert in_progress.value.code() is grpc.StatusCode.ABORTED
            assert "being worked on right now" in str(in_progress.value.details())
            detail = detail_from_rpc_error(in_progress.value)
            assert detail is not None
            assert (detail.code, detail.should_retry) == ("request_in_progress", True)
            assert await remit("held-requests", "retry", account_id, "running") == 75
            assert capsys.readouterr().err.splitlines()[-1] == (
                "remit held-requests retry: The request under 'running' is being worked on "
                "right now (a retry by its client, or the completer); look again once its try "
                "is over."
            )

            listed = await list_call(pb.ListHeldRequestsRequest())
            assert [held.idempotency_key for held in listed.data] == ["remit-auto-never", "running"]
            assert [held.in_progress for held in listed.data] == [False, True]
            assert [held.HasField("request_id") for held in listed.data] == [True, False]
            assert await remit("held-requests", "list", "--json") == 1
            shown = json.loads(capsys.readouterr().out)["data"]
            assert [held["request_id"] for held in shown] == ["req_1Never", None]

            # It sent nothing: dropped, and no client holds its key to come back under it.
            assert await remit("held-requests", "retry", account_id, "remit-auto-never") == 0
            assert capsys.readouterr().out == (
                f"dropped: the request under remit-auto-never of {account_id} had never got past "
                "started and sent nothing; no client holds its key (remit made it up), so no "
                "retry comes back to it\n"
            )
            left = await list_call(pb.ListHeldRequestsRequest())
            assert [held.idempotency_key for held in left.data] == ["running"]
