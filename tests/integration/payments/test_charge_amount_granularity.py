"""Amounts in whole steps of what their currency charges: whole krónur in `isk` (100 of
Stripe's hundredths), whole hundredths in a three-decimal currency (5.124 kwd is sent as 5120 or
5130). A create, an update, a partial capture or a refund of any other amount is refused as
Stripe refuses it (`invalid_charge_amount_no_decimal_compatible`, INVALID_ARGUMENT): a refusal
of the request itself, so its key stays free for the corrected one."""

from typing import Any

import grpc
import pytest

from remit.core.currency import FRACTIONAL_CHARGE_AMOUNT
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent, Status, Updated
from remit.payments.service import ConfirmParams, Done, PaymentsService
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.test_payments_service import call, refund_intent, respond

pytestmark = pytest.mark.anyio


async def _create(
    payments: PaymentsService,
    account_id: str,
    key: str,
    amount: int,
    currency: str,
    *,
    capture: CaptureMethod = CaptureMethod.AUTOMATIC,
    confirm: bool = True,
) -> PaymentIntent:
    result = await payments.create_payment_intent(
        call(account_id, key, body=f"{amount}{currency}{capture}{confirm}".encode()),
        NewPaymentIntent(amount_minor=amount, currency=currency, capture_method=capture),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa") if confirm else None,
    )
    assert isinstance(result, Done)
    return result.value


def _refused_for_granularity(error: RemitError, param: str = "amount") -> None:
    assert (error.kind, error.code, error.param) == (
        ErrorKind.INVALID_ARGUMENT,
        FRACTIONAL_CHARGE_AMOUNT,
        param,
    )


@pytest.mark.parametrize(
    ("amount", "currency", "whole"),
    [(5124, "kwd", 5120), (1, "kwd", 1000), (1, "bhd", 1000), (1, "isk", 100), (550, "isk", 500)],
)
async def test_a_create_finer_than_the_currency_charges_is_refused_and_frees_its_key(
    payments: PaymentsService, account_id: str, amount: int, currency: str, whole: int
) -> None:
    with pytest.raises(RemitError) as refused:
        await _create(payments, account_id, "K", amount, currency)
    _refused_for_granularity(refused.value)
    paid = await _create(payments, account_id, "K", whole, currency)
    assert (paid.status, paid.amount_received_minor) == (Status.SUCCEEDED, whole)


async def test_isk_amounts_are_hundredths_of_a_krona(
    payments: PaymentsService, account_id: str
) -> None:
    """500 is 5 kr, as a Stripe client charging 5 kr sends it: charged as it is."""
    paid = await _create(payments, account_id, "five-kronur", 500, "isk")
    assert (paid.amount_received_minor, paid.currency) == (500, "isk")


async def test_an_update_to_a_finer_amount_is_refused_and_frees_its_key(
    payments: PaymentsService, account_id: str
) -> None:
    intent = await _create(payments, account_id, "create", 5000, "kwd", confirm=False)
    with pytest.raises(RemitError) as refused:
        await payments.update_payment_intent(
            call(account_id, "update", "UpdatePaymentIntent", b"5124"),
            intent.id,
            Updated(at=intent.created_at, amount_minor=5124),
            respond,
        )
    _refused_for_granularity(refused.value)
    assert await payments.get_payment_intent(account_id, intent.id) == intent
    updated = await payments.update_payment_intent(
        call(account_id, "update", "UpdatePaymentIntent", b"5130"),
        intent.id,
        Updated(at=intent.created_at, amount_minor=5130),
        respond,
    )
    assert isinstance(updated, Done)
    assert updated.value.amount_minor == 5130


async def test_a_partial_capture_finer_than_the_currency_charges_is_refused(
    payments: PaymentsService, account_id: str
) -> None:
    held = await _create(payments, account_id, "held", 5000, "kwd", capture=CaptureMethod.MANUAL)
    with pytest.raises(RemitError) as refused:
        await payments.capture_payment_intent(
            call(account_id, "capture", "CapturePaymentIntent", b"1235"), held.id, 1235, respond
        )
    _refused_for_granularity(refused.value, "amount_to_capture")
    captured = await payments.capture_payment_intent(
        call(account_id, "capture", "CapturePaymentIntent", b"1230"), held.id, 1230, respond
    )
    assert isinstance(captured, Done)
    assert captured.value.amount_received_minor == 1230


async def test_a_refund_finer_than_the_currency_charges_is_refused_and_frees_its_key(
    payments: PaymentsService, account_id: str
) -> None:
    paid = await _create(payments, account_id, "paid", 5120, "kwd")
    with pytest.raises(RemitError) as refused:
        await refund_intent(payments, account_id, "refund", paid.id, 7)
    _refused_for_granularity(refused.value)
    refunded = await refund_intent(payments, account_id, "refund", paid.id, 70)
    assert isinstance(refunded, Done)
    isk = await _create(payments, account_id, "isk", 1000, "isk")
    with pytest.raises(RemitError) as refused_isk:
        await refund_intent(payments, account_id, "isk-refund", isk.id, 150)
    _refused_for_granularity(refused_isk.value)


async def test_grpc_callers_get_invalid_argument_on_create_capture_and_refund(
    payments: PaymentsService, payments_stub: Any, account_id: str
) -> None:
    held = await _create(payments, account_id, "held", 5000, "kwd", capture=CaptureMethod.MANUAL)
    calls = [
        (payments_stub.CreatePaymentIntent, pb.CreatePaymentIntentRequest(amount=1, currency="isk"),
         "amount"),
        (payments_stub.CapturePaymentIntent,
         pb.CapturePaymentIntentRequest(id=held.id, amount_to_capture=1001), "amount_to_capture"),
    ]  # fmt: skip
    for index, (method, request, param) in enumerate(calls):
        metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, f"rpc-{index}"))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await method(request, metadata=metadata)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        detail = detail_from_rpc_error(refused.value)
        assert detail is not None
        assert (detail.code, detail.param, detail.http_status) == (
            FRACTIONAL_CHARGE_AMOUNT,
            param,
            400,
        )
    paid = await _create(payments, account_id, "paid", 5120, "kwd")
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "rpc-refund"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CreateRefund(
            pb.CreateRefundRequest(payment_intent=paid.id, amount=7), metadata=metadata
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert (detail.code, detail.param) == (FRACTIONAL_CHARGE_AMOUNT, "amount")
