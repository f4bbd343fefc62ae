"""An authorization, capture, cancel or refund the network has made, whose booking in the
ledger fails: the client gets a retryable 500, never a 400 the SDKs would not retry, and the
retry with the same key finishes it. Against a real PostgreSQL, with the ledger's hooks and an
in-process card network."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.errors import ErrorKind, RemitError
from remit.ledger import postings as ledger
from remit.ledger.domain import LedgerError
from remit.ledger.verify import verify_ledger
from remit.payments.charges import RefundStatus
from remit.payments.domain import CaptureMethod, Status
from remit.payments.service import Done, PaymentsService
from tests.integration.payments.refund_ledger import ledger_payments
from tests.integration.payments.test_payments_service import call, pay, refund_intent, respond
from tests.support.fake_network import FakeNetwork

pytestmark = pytest.mark.anyio


@pytest.fixture
def payments(core_engine: AsyncEngine, network: FakeNetwork) -> PaymentsService:
    return ledger_payments(core_engine, network)


def fail_once(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Make the ledger's `name` refuse its first call, as a reservation found in a state the
    core did not expect makes it refuse (FAILED_PRECONDITION, a 400 on its own)."""
    real: Callable[..., Awaitable[Any]] = getattr(ledger, name)
    refused: list[str] = []

    async def refuse_first(*args: Any, **kwargs: Any) -> Any:
        if not refused:
            refused.append(name)
            raise LedgerError(
                message="Pending transaction 'x' was already voided.",
                kind=ErrorKind.FAILED_PRECONDITION,
                code="pending_transaction_already_voided",
            )
        return await real(*args, **kwargs)

    monkeypatch.setattr(ledger, name, refuse_first)
    return refused


def assert_retryable(error: RemitError) -> None:
    assert (error.kind, error.error_type, error.should_retry) == (
        ErrorKind.INTERNAL,
        "api_error",
        True,
    )


async def _books_balance(engine: AsyncEngine, account_id: str) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=datetime.now(UTC))
    assert not report.differences


async def test_a_capture_the_ledger_refuses_to_book_is_a_retryable_error(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    refused = fail_once(monkeypatch, "record_charge_captured")
    capture = call(account_id, "capture", endpoint="CapturePaymentIntent")
    with pytest.raises(RemitError) as raised:
        await payments.capture_payment_intent(capture, held.id, None, respond)
    assert refused
    assert_retryable(raised.value)
    assert (await payments.get_payment_intent(account_id, held.id)).status is (
        Status.REQUIRES_CAPTURE
    )
    retried = await payments.capture_payment_intent(capture, held.id, None, respond)
    assert isinstance(retried, Done)
    assert retried.value.status is Status.SUCCEEDED
    await _books_balance(core_engine, account_id)


async def test_a_cancel_the_ledger_refuses_to_book_is_a_retryable_error(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    refused = fail_once(monkeypatch, "record_authorization_voided")
    cancel = call(account_id, "cancel", endpoint="CancelPaymentIntent")
    with pytest.raises(RemitError) as raised:
        await payments.cancel_payment_intent(cancel, held.id, None, respond)
    assert refused
    assert_retryable(raised.value)
    retried = await payments.cancel_payment_intent(cancel, held.id, None, respond)
    assert isinstance(retried, Done)
    assert retried.value.status is Status.CANCELED
    await _books_balance(core_engine, account_id)


async def test_a_refund_the_ledger_refuses_to_book_is_a_retryable_error(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paid = await pay(payments, account_id, "paid")
    refused = fail_once(monkeypatch, "record_refund")
    with pytest.raises(RemitError) as raised:
        await refund_intent(payments, account_id, "refund", paid.id, 400)
    assert refused
    assert_retryable(raised.value)
    retried = await refund_intent(payments, account_id, "refund", paid.id, 400)
    assert isinstance(retried, Done)
    assert retried.value.status is RefundStatus.SUCCEEDED
    await _books_balance(core_engine, account_id)


async def test_a_failed_refund_the_ledger_refuses_to_release_is_a_retryable_error(
    payments: PaymentsService,
    network: FakeNetwork,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paid = await pay(payments, account_id, "paid")
    refused = fail_once(monkeypatch, "record_refund_released")
    original_refund = network.refund

    async def refusing_refund(*, authorization_id: str, amount_minor: int, reference: str) -> Any:
        network.refuse(reference, "declined", "The refund was declined.")
        return await original_refund(
            authorization_id=authorization_id, amount_minor=amount_minor, reference=reference
        )

    monkeypatch.setattr(network, "refund", refusing_refund)
    with pytest.raises(RemitError) as raised:
        await refund_intent(payments, account_id, "refund", paid.id, 400)
    assert refused
    assert_retryable(raised.value)
    retried = await refund_intent(payments, account_id, "refund", paid.id, 400)
    assert isinstance(retried, Done)
    assert retried.value.status is RefundStatus.FAILED
    await _books_balance(core_engine, account_id)


async def test_an_authorization_the_ledger_refuses_to_reserve_is_a_retryable_error(
    payments: PaymentsService,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = fail_once(monkeypatch, "record_authorization")
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert refused
    assert_retryable(raised.value)
    retried = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    assert retried.status is Status.REQUIRES_CAPTURE
    await _books_balance(core_engine, account_id)


async def test_a_payment_captured_at_once_the_ledger_refuses_to_book_is_a_retryable_error(
    payments: PaymentsService,
    network: FakeNetwork,
    core_engine: AsyncEngine,
    account_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = fail_once(monkeypatch, "record_charge_captured")
    with pytest.raises(RemitError) as raised:
        await pay(payments, account_id, "paid")
    assert refused
    assert_retryable(raised.value)
    retried = await pay(payments, account_id, "paid")
    assert retried.status is Status.SUCCEEDED
    # The retry finished from the network's stored answer: the card was authorized once.
    assert len(network.sent) == 1
    await _books_balance(core_engine, account_id)


async def test_a_pricing_stored_out_of_bounds_charges_no_fee_rather_than_failing_the_payment(
    payments: PaymentsService, core_engine: AsyncEngine, account_id: str
) -> None:
    # Stored before settings were checked when written (migration 0059 repairs such a row, or
    # stops the upgrade for an operator to set this one: its fixed part is positive).
    async with core_engine.begin() as db:
        await db.execute(
            text("UPDATE accounts SET fee_percent_bps = -1000 WHERE id = :id"), {"id": account_id}
        )
    paid = await pay(payments, account_id, "paid")
    assert paid.status is Status.SUCCEEDED
    async with core_engine.connect() as db:
        fee, net = (
            await db.execute(
                text("SELECT fee, net FROM balance_transactions WHERE account_id = :id"),
                {"id": account_id},
            )
        ).one()
    assert (fee, net) == (0, 1000)
    await _books_balance(core_engine, account_id)
