"""The acquirer's gRPC server, started in the test's event loop on a free port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeAlias

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.faults import Fault, FaultConfig, FaultPlan
from remit.acquirer.grpc import acquirer_interceptors, acquirer_registration
from remit.acquirer.service import AcquirerService
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit_api.acquirer.v1 import acquirer_pb2 as pb
from remit_api.acquirer.v1 import acquirer_pb2_grpc
from remit_api.common.v1 import common_pb2
from tests.integration.acquirer.support import MERCHANT, NOW
from tests.integration.acquirer.support import authorization_request as settled_sale_request

pytestmark = pytest.mark.anyio

# The generated stubs type the asyncio flavour separately; it exists only for the checker.
Stub: TypeAlias = "acquirer_pb2_grpc.AcquirerServiceAsyncStub"


@asynccontextmanager
async def running_acquirer(
    engine: AsyncEngine, faults: FaultConfig | None = None, clock: FixedClock | None = None
) -> AsyncIterator[Stub]:
    server = grpc.aio.server(interceptors=acquirer_interceptors(faults or FaultConfig()))
    service = AcquirerService(engine, clock or FixedClock(NOW), grace=timedelta(seconds=97))
    acquirer_registration(service).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield acquirer_pb2_grpc.AcquirerServiceStub(channel)
    finally:
        await server.stop(None)


def authorize_request(
    reference: str, number: str = "4242424242424242", *, capture: bool = False
) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        reference=reference,
        card_number=number,
        exp_month=12,
        exp_year=2034,
        cvc="123",
        amount=5000,
        currency="usd",
        capture=capture,
        merchant_id=MERCHANT,
        billing_address=common_pb2.Address(line1="1 Main Street", postal_code="94107"),
    )


async def test_a_payment_goes_through_authorize_capture_refund_lookup_and_settlement(
    acquirer_engine: AsyncEngine,
) -> None:
    async with running_acquirer(acquirer_engine) as stub:
        authorized = await stub.Authorize(authorize_request("pay-auth"), timeout=10)
        result = authorized.result
        assert result.approved
        assert not authorized.replayed
        assert result.network_status == common_pb2.NETWORK_STATUS_APPROVED_BY_NETWORK
        assert result.cvc_check == common_pb2.CARD_CHECK_RESULT_PASS
        assert result.address_line1_check == common_pb2.CARD_CHECK_RESULT_PASS
        assert result.risk_level_hint == common_pb2.RISK_LEVEL_NORMAL
        assert result.authorization_id.startswith("auth_")
        assert result.operation_id.startswith("op_")
        assert len(result.network_transaction_id) == 15
        assert len(result.authorization_code) == 6

        replay = await stub.Authorize(authorize_request("pay-auth"), timeout=10)
        assert replay.replayed
        assert replay.result == result

        captured = await stub.Capture(
            pb.CaptureRequest(
                authorization_id=result.authorization_id, amount=4000, reference="pay-cap"
            ),
            timeout=10,
        )
        assert captured.operation.approved
        assert captured.operation.kind == pb.OPERATION_KIND_CAPTURE
        assert captured.operation.amount == 4000
        # A capture of 4000 of the 5000 held releases the other 1000 back to the cardholder.
        assert captured.operation.released == 1000
        assert captured.operation.merchant_id == MERCHANT
        refunded = await stub.Refund(
            pb.RefundRequest(
                authorization_id=result.authorization_id, amount=1500, reference="pay-ref"
            ),
            timeout=10,
        )
        assert refunded.operation.approved
        voided = await stub.Void(
            pb.VoidRequest(authorization_id=result.authorization_id, reference="pay-void"),
            timeout=10,
        )
        assert not voided.operation.approved
        assert voided.operation.code == "charge_already_captured"

        looked_up = await stub.LookupOperation(
            pb.LookupOperationRequest(reference="pay-auth"), timeout=10
        )
        assert looked_up.operation.kind == pb.OPERATION_KIND_AUTHORIZE
        assert looked_up.operation.authorization == result
        assert looked_up.operation.created.ToSeconds() == int(NOW.timestamp())
        assert looked_up.operation.HasField("released")
        assert looked_up.operation.released == 0
        looked_up_capture = await stub.LookupOperation(
            pb.LookupOperationRequest(reference="pay-cap"), timeout=10
        )
        assert looked_up_capture.operation == captured.operation

        report = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=NOW.date().isoformat(), allow_partial=True),
            timeout=10,
        )
        assert report.date == "2031-03-14"
        # Both settled at the same (fixed) instant, so compare without order.
        assert sorted(
            (row.reference, row.kind, row.amount, row.fee, row.released) for row in report.rows
        ) == [
            ("pay-cap", pb.SETTLEMENT_KIND_CAPTURE, 4000, 60, 1000),
            ("pay-ref", pb.SETTLEMENT_KIND_REFUND, 1500, 0, 0),
        ]
        assert all(row.HasField("released") for row in report.rows)
        assert {row.authorization_id for row in report.rows} == {result.authorization_id}


async def test_every_answer_and_look_up_carries_the_fee_its_settlement_row_carries(
    acquirer_engine: AsyncEngine,
) -> None:
    """The caller books the network's fee when it learns of the capture: from the answer, or
    from the look-up when the answer was lost. Each says what the settlement row will."""
    async with running_acquirer(acquirer_engine) as stub:
        sale = await stub.Authorize(authorize_request("fee-sale", capture=True), timeout=10)
        held = await stub.Authorize(authorize_request("fee-held"), timeout=10)
        captured = await stub.Capture(
            pb.CaptureRequest(
                authorization_id=held.result.authorization_id, amount=3333, reference="fee-cap"
            ),
            timeout=10,
        )
        refunded = await stub.Refund(
            pb.RefundRequest(
                authorization_id=held.result.authorization_id, amount=1000, reference="fee-ref"
            ),
            timeout=10,
        )
        looked_up = {
            reference: (
                await stub.LookupOperation(pb.LookupOperationRequest(reference=reference))
            ).operation
            for reference in ("fee-sale", "fee-held", "fee-cap", "fee-ref")
        }
        report = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=NOW.date().isoformat(), allow_partial=True),
            timeout=10,
        )
    # 1.50% of 5000 is 75; of 3333, 49.995, rounded to 50.
    assert (sale.result.fee, held.result.fee) == (75, 0)
    assert held.result.HasField("fee"), "an authorization that captured nothing says so"
    assert (captured.operation.fee, refunded.operation.fee) == (50, 0)
    assert {ref: (op.fee, op.authorization.fee) for ref, op in looked_up.items()} == {
        "fee-sale": (75, 75),
        "fee-held": (0, 0),
        "fee-cap": (50, 0),
        "fee-ref": (0, 0),
    }
    assert sorted((row.reference, row.fee) for row in report.rows) == [
        ("fee-cap", 50),
        ("fee-ref", 0),
        ("fee-sale", 75),
    ]


async def test_the_new_hint_fields_reach_the_caller(acquirer_engine: AsyncEngine) -> None:
    async with running_acquirer(acquirer_engine) as stub:
        bypass = await stub.Authorize(authorize_request("h-1", "4000000000000077"), timeout=10)
        dispute = await stub.Authorize(authorize_request("h-2", "4000000000000259"), timeout=10)
        risky = await stub.Authorize(authorize_request("h-3", "4000000000009235"), timeout=10)
    assert bypass.result.bypass_pending
    assert not bypass.result.dispute_expected
    assert dispute.result.dispute_expected
    assert risky.result.risk_level_hint == common_pb2.RISK_LEVEL_ELEVATED


async def test_an_off_session_payment_cites_its_setup_over_grpc(
    acquirer_engine: AsyncEngine,
) -> None:
    """4000002500003155: the setup, authenticated, approves; the off-session payment citing
    its network transaction id approves without 3-D Secure; citing nothing, it declines."""
    async with running_acquirer(acquirer_engine) as stub:
        setup_request = authorize_request("cof-setup", "4000002500003155")
        setup_request.three_d_secure_authenticated = True
        setup_request.setup_off_session = True
        setup = (await stub.Authorize(setup_request, timeout=10)).result
        renewal = authorize_request("cof-renewal", "4000002500003155")
        renewal.off_session = True
        renewal.initial_network_transaction_id = setup.network_transaction_id
        renewed = (await stub.Authorize(renewal, timeout=10)).result
        uncited = authorize_request("cof-uncited", "4000002500003155")
        uncited.off_session = True
        declined = (await stub.Authorize(uncited, timeout=10)).result
    assert setup.approved
    assert renewed.approved
    assert (declined.approved, declined.decline_code) == (False, "authentication_required")


async def test_errors_arrive_as_precise_statuses_with_stripe_details(
    acquirer_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_acquirer(acquirer_engine) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as bad_number:
            await stub.Authorize(authorize_request("e-1", "4242 4242 4242 4242"), timeout=10)
        assert bad_number.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        detail = remit_error_from_rpc_error(bad_number.value)
        assert (detail.param, detail.code) == ("card_number", "invalid_number")

        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.LookupOperation(pb.LookupOperationRequest(reference="never"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as missing_auth:
            await stub.Capture(
                pb.CaptureRequest(authorization_id="auth_nope", amount=1, reference="e-2"),
                timeout=10,
            )
        assert missing_auth.value.code() == grpc.StatusCode.NOT_FOUND

        await stub.Authorize(authorize_request("e-3"), timeout=10)
        changed = authorize_request("e-3")
        changed.amount = 1
        with pytest.raises(grpc.aio.AioRpcError) as reused:
            await stub.Authorize(changed, timeout=10)
        assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        error = remit_error_from_rpc_error(reused.value)
        assert error.kind is ErrorKind.FAILED_PRECONDITION
        assert error.code == "reference_reused"

        with pytest.raises(grpc.aio.AioRpcError) as bad_date:
            await stub.GetSettlementReport(
                pb.GetSettlementReportRequest(date="yesterday"), timeout=10
            )
        assert bad_date.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "4242424242424242" not in caplog.text
    assert "4242 4242 4242 4242" not in caplog.text


async def test_the_settlement_report_takes_only_the_days_the_commands_take(
    acquirer_engine: AsyncEngine,
) -> None:
    """As `remit reconcile` and `remit settlement-report`: a day not begun has nothing settled
    (INVALID_ARGUMENT, partial or not); today is not over, so it is reported only when the
    caller asks for a partial report (FAILED_PRECONDITION, day_not_over, otherwise), which
    says it is partial; a day over is reported whole."""
    await AcquirerService(acquirer_engine, FixedClock(NOW)).authorize(
        settled_sale_request(reference="report-sale", capture=True)
    )
    today, tomorrow, yesterday = "2031-03-14", "2031-03-15", "2031-03-13"
    async with running_acquirer(acquirer_engine) as stub:
        for allow_partial in (False, True):
            with pytest.raises(grpc.aio.AioRpcError) as not_begun:
                await stub.GetSettlementReport(
                    pb.GetSettlementReportRequest(date=tomorrow, allow_partial=allow_partial),
                    timeout=10,
                )
            assert not_begun.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert remit_error_from_rpc_error(not_begun.value).param == "date"
        with pytest.raises(grpc.aio.AioRpcError) as not_over:
            await stub.GetSettlementReport(pb.GetSettlementReportRequest(date=today), timeout=10)
        assert not_over.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert remit_error_from_rpc_error(not_over.value).code == "day_not_over"
        partial = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=today, allow_partial=True), timeout=10
        )
        whole = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date=yesterday), timeout=10
        )
    assert ([row.reference for row in partial.rows], partial.partial) == (["report-sale"], True)
    assert (list(whole.rows), whole.partial) == ([], False)


async def _lookup_code(stub: Stub, reference: str) -> grpc.StatusCode:
    try:
        await stub.LookupOperation(pb.LookupOperationRequest(reference=reference), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_an_injected_error_fails_before_anything_is_recorded(
    acquirer_engine: AsyncEngine,
) -> None:
    async with running_acquirer(acquirer_engine, FaultConfig(error_rate=1.0, seed=1)) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Authorize(authorize_request("f-err"), timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        # Lookups are exempt from faults, and find nothing.
        assert await _lookup_code(stub, "f-err") == grpc.StatusCode.NOT_FOUND


async def test_an_injected_timeout_outlasts_the_deadline_and_records_nothing(
    acquirer_engine: AsyncEngine,
) -> None:
    async with running_acquirer(acquirer_engine, FaultConfig(timeout_rate=1.0, seed=1)) as stub:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as timed_out:
            await stub.Authorize(authorize_request("f-timeout"), timeout=0.3)
        assert timed_out.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started >= 0.29
        await asyncio.sleep(0.2)  # past the server's own sleep
        assert await _lookup_code(stub, "f-timeout") == grpc.StatusCode.NOT_FOUND


async def test_a_lost_response_is_committed_and_found_by_lookup(
    acquirer_engine: AsyncEngine,
) -> None:
    faults = FaultConfig(lost_response_rate=1.0, seed=1)
    async with running_acquirer(acquirer_engine, faults) as stub:
        for _ in range(2):  # the retry is lost too, and still records nothing new
            with pytest.raises(grpc.aio.AioRpcError) as lost:
                await stub.Authorize(authorize_request("f-lost", capture=True), timeout=10)
            assert lost.value.code() == grpc.StatusCode.UNAVAILABLE
        found = await stub.LookupOperation(
            pb.LookupOperationRequest(reference="f-lost"), timeout=10
        )
        assert found.operation.approved
        assert found.operation.authorization.captured
        report = await stub.GetSettlementReport(
            pb.GetSettlementReportRequest(date="2031-03-14", allow_partial=True), timeout=10
        )
        assert [row.reference for row in report.rows] == ["f-lost"]


async def test_latency_delays_mutations(acquirer_engine: AsyncEngine) -> None:
    async with running_acquirer(acquirer_engine, FaultConfig(latency_ms=200)) as stub:
        started = time.monotonic()
        await stub.Authorize(authorize_request("f-slow"), timeout=10)
        assert time.monotonic() - started >= 0.2


async def test_reads_meet_faults_only_when_included(acquirer_engine: AsyncEngine) -> None:
    faults = FaultConfig(error_rate=1.0, seed=3, include_reads=True)
    async with running_acquirer(acquirer_engine, faults) as stub:
        assert await _lookup_code(stub, "anything") == grpc.StatusCode.UNAVAILABLE


async def test_a_seed_decides_exactly_which_calls_fail(acquirer_engine: AsyncEngine) -> None:
    faults = FaultConfig(error_rate=0.3, lost_response_rate=0.3, seed=20310314)
    plan = FaultPlan(faults)
    expected = [plan.next_fault() for _ in range(24)]
    assert Fault.ERROR in expected
    assert Fault.LOST_RESPONSE in expected
    assert Fault.NONE in expected
    async with running_acquirer(acquirer_engine, faults) as stub:
        outcomes = []
        codes = set()
        for n in range(24):
            try:
                await stub.Authorize(authorize_request(f"seeded-{n}"), timeout=10)
                outcomes.append(Fault.NONE)
            except grpc.aio.AioRpcError as error:
                codes.add(error.code())
                recorded = await _lookup_code(stub, f"seeded-{n}") == grpc.StatusCode.OK
                outcomes.append(Fault.LOST_RESPONSE if recorded else Fault.ERROR)
    assert outcomes == expected
    assert codes == {grpc.StatusCode.UNAVAILABLE}
