"""A look-up that finds at the acquirer another operation than the one the core sent under the
reference (another amount, currency, merchant, kind or authorization: a bug in remit, or a
reused reference) is refused. Nothing of it reaches the charge, the intent, the refund or the
ledger; the request fails as remit's own error (500 `api_error`), logged with the reference and
the fields that differ, and keeps its recovery point. Once the acquirer holds what was sent, a
retry with the key settles the request as before, once.

Against the real acquirer over gRPC and the real ledger (`money_trail`): each call's response is
lost after the acquirer committed it, so the core looks the reference up; just before each
look-up the acquirer's record under the reference is changed in its database, and changed back
right after (`AlteredAtTheAcquirer`).
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.acquirer.tables import operations
from remit.core.clock import FixedClock
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import error_detail
from remit.ledger.postings import refund_hold_id_for
from remit.ledger.tables import balance_transactions, ledger_transactions
from remit.payments.charges import RefundStatus
from remit.payments.domain import CaptureMethod, NewPaymentIntent, Status
from remit.payments.idempotency import RecoveryPoint
from remit.payments.lookup_expectations import ExpectedOperation
from remit.payments.service import ConfirmParams, Done
from remit.payments.tables import idempotency_keys
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from tests.integration.ledger.conftest import T0
from tests.integration.ledger.money_trail import (
    Trail,
    TrailNetwork,
    keyed,
    money_trail,
    pay,
    respond,
)

pytestmark = pytest.mark.anyio

Row = RowMapping
# The acquirer record's columns to change, given the record.
Alteration = Callable[[Row], dict[str, object]]
LOGGER = "remit.payments.lookup_expectations"
ANOTHER_MERCHANT = "acct_1SomeoneElse"


class AlteredAtTheAcquirer(TrailNetwork):
    """`TrailNetwork` whose look-ups find the acquirer's record under the reference changed by
    `alteration`, as a bug or a reused reference would leave it; the record is changed back
    once the look-up has its answer."""

    def __init__(
        self,
        stub: "acquirer_pb2_grpc.AcquirerServiceAsyncStub",
        clock: FixedClock,
        acquirer_engine: AsyncEngine,
    ) -> None:
        super().__init__(stub, clock)
        self._acquirer_engine = acquirer_engine
        self.alteration: Alteration | None = None

    async def _change(self, reference: str, values: Mapping[str, object]) -> None:
        async with self._acquirer_engine.begin() as db:
            await db.execute(
                update(operations).where(operations.c.reference == reference).values(**values)
            )

    async def _lookup(
        self, reference: str, expected: ExpectedOperation
    ) -> acquirer_pb2.Operation | None:
        if self.alteration is None:
            return await super()._lookup(reference, expected)
        async with self._acquirer_engine.connect() as db:
            row = (
                (await db.execute(select(operations).where(operations.c.reference == reference)))
                .mappings()
                .one()
            )
        changed = self.alteration(row)
        await self._change(reference, changed)
        try:
            return await super()._lookup(reference, expected)
        finally:
            await self._change(reference, {column: row[column] for column in changed})


@asynccontextmanager
async def altered_trail(
    core_engine: AsyncEngine, acquirer_engine: AsyncEngine
) -> AsyncIterator[tuple[Trail, AlteredAtTheAcquirer]]:
    def network(
        stub: "acquirer_pb2_grpc.AcquirerServiceAsyncStub", clock: FixedClock
    ) -> AlteredAtTheAcquirer:
        return AlteredAtTheAcquirer(stub, clock, acquirer_engine)

    async with money_trail(core_engine, acquirer_engine, FixedClock(T0), network) as trail:
        assert isinstance(trail.network, AlteredAtTheAcquirer)
        yield trail, trail.network


def other_amount(row: Row) -> dict[str, object]:
    return {"amount_minor": row["amount_minor"] + 1}


def kept_open(row: Row) -> dict[str, object]:
    assert row["released_minor"] > 0
    return {"released_minor": 0}


def other_currency(row: Row) -> dict[str, object]:
    return {"currency": "eur"}


def other_merchant(row: Row) -> dict[str, object]:
    return {"merchant_id": ANOTHER_MERCHANT}


def other_kind(kind: str) -> Alteration:
    return lambda row: {"kind": kind}


def other_authorization(authorization_id: str) -> Alteration:
    return lambda row: {"authorization_id": authorization_id}


def other_capture(row: Row) -> dict[str, object]:
    """An authorization that captured when it was to hold the funds, or the other way round."""
    result = dict(row["authorization_result"])
    return {"authorization_result": {**result, "captured": not result["captured"]}}


async def refused_each_way(
    network: AlteredAtTheAcquirer,
    caplog: pytest.LogCaptureFixture,
    attempt: Callable[[], Awaitable[object]],
    alterations: Mapping[str, Alteration],
    unchanged: Callable[[], Awaitable[None]],
) -> list[str]:
    """Run `attempt` (the same request, under the same key) once under each alteration: each
    fails as remit's own error and leaves the request's state as `unchanged` checks it. The
    error logged for each, in order."""
    logged: list[str] = []
    for field, alteration in alterations.items():
        network.alteration = alteration
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger=LOGGER), pytest.raises(RemitError) as raised:
            await attempt()
        error = raised.value
        assert (error.kind, error.error_type, error.code) == (
            ErrorKind.INTERNAL,
            "api_error",
            None,
        ), field
        assert error_detail(error).http_status == 500
        (message,) = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert f": {field} differ;" in message, message
        logged.append(message)
        await unchanged()
    network.alteration = None
    return logged


async def recovery_point(engine: AsyncEngine, account_id: str, key: str) -> tuple[str, ...]:
    """The key's recovery point, and the charge and refund it is about."""
    async with engine.connect() as db:
        row = (
            await db.execute(
                select(
                    idempotency_keys.c.recovery_point,
                    idempotency_keys.c.charge_id,
                    idempotency_keys.c.refund_id,
                ).where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
            )
        ).one()
    return tuple(row)


async def ledger_of(engine: AsyncEngine, account_id: str) -> set[tuple[object, ...]]:
    """Every ledger transaction of the account with its outcome, and every balance
    transaction."""
    t, b = ledger_transactions.c, balance_transactions.c
    async with engine.connect() as db:
        journal = await db.execute(
            select(t.id, t.pending_status, t.resolved_by, t.reversed_by).where(
                t.account_id == account_id
            )
        )
        balance = await db.execute(select(b.id, b.type).where(b.account_id == account_id))
        return {tuple(row) for row in journal} | {tuple(row) for row in balance}


async def operations_under(engine: AsyncEngine, reference: str) -> list[tuple[object, ...]]:
    async with engine.connect() as db:
        rows = await db.execute(
            select(operations.c.kind, operations.c.amount_minor, operations.c.approved).where(
                operations.c.reference == reference
            )
        )
        return [tuple(row) for row in rows]


async def authorization_of(trail: Trail, account_id: str, charge_id: str | None) -> str:
    assert charge_id is not None
    charge, _ = await trail.payments.get_charge(account_id, charge_id)
    assert charge.authorization_id is not None
    return charge.authorization_id


@pytest.mark.parametrize("capture_method", [CaptureMethod.MANUAL, CaptureMethod.AUTOMATIC])
async def test_an_authorization_found_otherwise_is_refused_then_settled_once(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
    capture_method: CaptureMethod,
) -> None:
    """With manual capture an AUTHORIZE that holds the funds, with automatic capture one that
    captured them, for the charge's amount and currency, by the charge's merchant."""
    async with altered_trail(core_engine, acquirer_engine) as (trail, network):
        ledger_before = await ledger_of(core_engine, account_id)

        async def attempt() -> object:
            return await trail.payments.create_payment_intent(
                keyed(account_id, "pay", "CreatePaymentIntent"),
                NewPaymentIntent(amount_minor=1000, currency="usd", capture_method=capture_method),
                respond,
                confirm=ConfirmParams(payment_method_id="pm_visa"),
            )

        async def unchanged() -> None:
            point, charge_id, _ = await recovery_point(core_engine, account_id, "pay")
            assert point == RecoveryPoint.ATTEMPT_CREATED.value
            charge, _ = await trail.payments.get_charge(account_id, str(charge_id))
            intent = await trail.payments.get_payment_intent(account_id, charge.payment_intent_id)
            assert intent.status is Status.PROCESSING
            assert (charge.network_result, charge.authorization_id, charge.captured) == (
                None,
                None,
                False,
            )
            assert await ledger_of(core_engine, account_id) == ledger_before

        network.lose.append("authorize")
        logged = await refused_each_way(
            network,
            caplog,
            attempt,
            {
                "amount": other_amount,
                "currency": other_currency,
                "merchant_id": other_merchant,
                "kind": other_kind("capture"),
                "authorization.captured": other_capture,
            },
            unchanged,
        )
        _, charge_id, _ = await recovery_point(core_engine, account_id, "pay")
        assert all(f"holds {charge_id} " in message for message in logged)

        settled = await attempt()
        assert isinstance(settled, Done)
        intent = settled.value
        automatic = capture_method is CaptureMethod.AUTOMATIC
        assert intent.status is (Status.SUCCEEDED if automatic else Status.REQUIRES_CAPTURE)
        assert intent.amount_received_minor == (1000 if automatic else 0)
        assert await operations_under(acquirer_engine, str(charge_id)) == [
            ("authorize", 1000, True)
        ]
        ledger = await ledger_of(core_engine, account_id) - ledger_before
        charges = [row for row in ledger if row[1:] == ("charge",)]
        assert len(charges) == (1 if automatic else 0)


async def test_a_partial_capture_found_otherwise_is_refused_then_settled_once(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The capture expected is of `amount_to_capture` (600 of 1000), on the charge's own
    authorization, releasing the other 400."""
    async with altered_trail(core_engine, acquirer_engine) as (trail, network):
        held = await pay(trail, account_id, "held", 1000, capture=CaptureMethod.MANUAL)
        other = await pay(trail, account_id, "other", 700, capture=CaptureMethod.MANUAL)
        others_authorization = await authorization_of(trail, account_id, other.latest_charge_id)
        assert held.latest_charge_id is not None
        reference = f"{held.latest_charge_id}_capture"
        ledger_before = await ledger_of(core_engine, account_id)

        async def attempt() -> object:
            return await trail.payments.capture_payment_intent(
                keyed(account_id, "capture", "CapturePaymentIntent"), held.id, 600, respond
            )

        async def unchanged() -> None:
            point, _, _ = await recovery_point(core_engine, account_id, "capture")
            assert point == RecoveryPoint.ATTEMPT_CREATED.value
            intent = await trail.payments.get_payment_intent(account_id, held.id)
            assert (intent.status, intent.amount_received_minor) == (Status.REQUIRES_CAPTURE, 0)
            charge, _ = await trail.payments.get_charge(account_id, str(held.latest_charge_id))
            assert (charge.captured, charge.amount_captured_minor) == (False, 0)
            assert charge.balance_transaction_id is None
            assert await ledger_of(core_engine, account_id) == ledger_before

        network.lose.append("capture")
        logged = await refused_each_way(
            network,
            caplog,
            attempt,
            {
                "amount": other_amount,
                "currency": other_currency,
                "merchant_id": other_merchant,
                "kind": other_kind("refund"),
                "authorization_id": other_authorization(others_authorization),
                # The capture kept the other 400 held, which the core's capture releases.
                "released": kept_open,
            },
            unchanged,
        )
        assert all(f"holds {reference} " in message for message in logged)

        settled = await attempt()
        assert isinstance(settled, Done)
        assert (settled.value.status, settled.value.amount_received_minor) == (
            Status.SUCCEEDED,
            600,
        )
        assert await operations_under(acquirer_engine, reference) == [("capture", 600, True)]
        added = await ledger_of(core_engine, account_id) - ledger_before
        assert len([row for row in added if row[1:] == ("charge",)]) == 1


async def test_a_void_found_otherwise_is_refused_then_settled_once(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancel's release of the charge's authorization. Its amount is not expected: the void
    names none, and the acquirer records what it released."""
    async with altered_trail(core_engine, acquirer_engine) as (trail, network):
        held = await pay(trail, account_id, "held", 1000, capture=CaptureMethod.MANUAL)
        # Held for more than the void releases: the acquirer's database refuses a release
        # moved onto an authorization it exceeds (acquirer migration 0006).
        other = await pay(trail, account_id, "other", 1200, capture=CaptureMethod.MANUAL)
        others_authorization = await authorization_of(trail, account_id, other.latest_charge_id)
        assert held.latest_charge_id is not None
        reference = f"{held.latest_charge_id}_void"
        ledger_before = await ledger_of(core_engine, account_id)

        async def attempt() -> object:
            return await trail.payments.cancel_payment_intent(
                keyed(account_id, "cancel", "CancelPaymentIntent"), held.id, None, respond
            )

        async def unchanged() -> None:
            point, _, _ = await recovery_point(core_engine, account_id, "cancel")
            assert point == RecoveryPoint.ATTEMPT_CREATED.value
            intent = await trail.payments.get_payment_intent(account_id, held.id)
            assert intent.status is Status.REQUIRES_CAPTURE
            charge, _ = await trail.payments.get_charge(account_id, str(held.latest_charge_id))
            assert not charge.authorization_released
            assert await ledger_of(core_engine, account_id) == ledger_before

        network.lose.append("void")
        logged = await refused_each_way(
            network,
            caplog,
            attempt,
            {
                "currency": other_currency,
                "merchant_id": other_merchant,
                "kind": other_kind("capture"),
                "authorization_id": other_authorization(others_authorization),
            },
            unchanged,
        )
        assert all(f"holds {reference} " in message for message in logged)

        settled = await attempt()
        assert isinstance(settled, Done)
        assert settled.value.status is Status.CANCELED
        assert await operations_under(acquirer_engine, reference) == [("void", 1000, True)]
        added = await ledger_of(core_engine, account_id) - ledger_before
        assert added, "the authorization's reserve is let go"


async def test_a_partial_refund_found_otherwise_is_refused_then_settled_once(
    core_engine: AsyncEngine,
    acquirer_engine: AsyncEngine,
    account_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The refund expected is of the refund's amount (400 of 1000), on the charge's
    authorization."""
    async with altered_trail(core_engine, acquirer_engine) as (trail, network):
        sale = await pay(trail, account_id, "sale", 1000)
        other = await pay(trail, account_id, "other", 700)
        others_authorization = await authorization_of(trail, account_id, other.latest_charge_id)
        assert sale.latest_charge_id is not None
        ledger_before = await ledger_of(core_engine, account_id)

        async def attempt() -> object:
            return await trail.payments.create_refund(
                keyed(account_id, "refund", "CreateRefund"),
                charge_id=None,
                payment_intent_id=sale.id,
                amount_minor=400,
                reason=None,
                metadata={},
                respond=lambda refund: refund.id.encode(),
            )

        async def unchanged() -> None:
            point, _, refund_id = await recovery_point(core_engine, account_id, "refund")
            assert point == RecoveryPoint.ATTEMPT_CREATED.value
            refund = await trail.payments.get_refund(account_id, str(refund_id))
            assert (refund.status, refund.acquirer_refund_id) == (RefundStatus.PENDING, None)
            charge, _ = await trail.payments.get_charge(account_id, str(sale.latest_charge_id))
            # Reserved when the refund was made, as before the network is asked.
            assert charge.amount_refunded_minor == 400
            # Only the hold the refund took when it was made, still open, and the refund's
            # balance transaction, written with the hold.
            added = await ledger_of(core_engine, account_id) - ledger_before
            assert added == {
                (refund_hold_id_for(refund.id), "open", None, None),
                (refund.balance_transaction_id, "refund"),
            }

        network.lose.append("refund")
        logged = await refused_each_way(
            network,
            caplog,
            attempt,
            {
                "amount": other_amount,
                "currency": other_currency,
                "merchant_id": other_merchant,
                "kind": other_kind("capture"),
                "authorization_id": other_authorization(others_authorization),
            },
            unchanged,
        )
        _, _, refund_id = await recovery_point(core_engine, account_id, "refund")
        assert all(f"holds {refund_id} " in message for message in logged)

        settled = await attempt()
        assert isinstance(settled, Done)
        refund = await trail.payments.get_refund(account_id, str(refund_id))
        assert refund.status is RefundStatus.SUCCEEDED
        assert await operations_under(acquirer_engine, str(refund_id)) == [("refund", 400, True)]
        added = await ledger_of(core_engine, account_id) - ledger_before
        assert len([row for row in added if row[1:] == ("refund",)]) == 1
