"""Each capture of a charge is sent under a reference of its own: the network keeps a refused
capture under its reference, so a later capture of the charge (another amount, say) must not
reuse it. The first capture keeps `{charge}_capture`, which a capture in flight from before the
captures were counted is still looked up by."""

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import RemitError
from remit.ledger.balance_repository import BalanceRepository
from remit.ledger.verify import verify_ledger
from remit.payments.domain import CaptureMethod, Status
from remit.payments.repository import ChargeRepository
from remit.payments.service import CaptureParams, Done
from remit.storage.embedded import EmbeddedCluster
from remit.storage.engine import dispose, make_engine
from remit.storage.migrate import alembic_config, upgrade
from tests.integration.payments.refund_ledger import ledger_payments
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.fake_network import FakeNetwork
from tests.support.postgres import scratch_database

pytestmark = pytest.mark.anyio

_BEFORE = "0051_numeric_host_endpoints"


async def _capture_shown(engine: AsyncEngine, account_id: str, charge_id: str) -> str | None:
    """The reference the charge's balance transaction says its capture settled under."""
    async with engine.connect() as db:
        charge = await ChargeRepository(db).get(account_id, charge_id)
        assert charge is not None
        assert charge.balance_transaction_id is not None
        shown = await BalanceRepository(db).get_balance_transaction(
            account_id, charge.balance_transaction_id
        )
    assert shown is not None
    return shown.acquirer_reference


async def _books_balance(engine: AsyncEngine, account_id: str) -> None:
    async with engine.connect() as db:
        report = await verify_ledger(db, account_id=account_id, now=datetime.now(UTC))
    assert report.ok, (report.differences, report.chain_breaks)


async def test_a_capture_after_a_refused_one_goes_under_a_reference_of_its_own(
    core_engine: AsyncEngine, network: FakeNetwork, account_id: str
) -> None:
    payments = ledger_payments(core_engine, network)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    charge_id = held.latest_charge_id
    assert charge_id is not None
    network.refuse(f"{charge_id}_capture", "card_declined", "Refused for now.")
    with pytest.raises(RemitError) as refused:
        await payments.capture_payment_intent(
            call(account_id, "cap1", endpoint="CapturePaymentIntent"), held.id, 600, respond
        )
    assert refused.value.code == "card_declined"

    captured = await payments.capture_payment_intent(
        call(account_id, "cap2", endpoint="CapturePaymentIntent"), held.id, 500, respond
    )
    assert isinstance(captured, Done)
    assert (captured.value.status, captured.value.amount_received_minor) == (Status.SUCCEEDED, 500)
    assert network.sent[-2:] == [f"{charge_id}_capture", f"{charge_id}_capture_2"]
    # The ledger books it under the reference the network settles it under (reconciliation
    # pairs them on it).
    assert await _capture_shown(core_engine, account_id, charge_id) == f"{charge_id}_capture_2"
    await _books_balance(core_engine, account_id)


async def test_a_first_capture_keeps_the_charge_s_capture_reference(
    core_engine: AsyncEngine, network: FakeNetwork, account_id: str
) -> None:
    payments = ledger_payments(core_engine, network)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    charge_id = held.latest_charge_id
    assert charge_id is not None
    captured = await payments.capture_payment_intent(
        call(account_id, "cap", endpoint="CapturePaymentIntent"), held.id, None, respond
    )
    assert isinstance(captured, Done)
    assert network.sent[-1] == f"{charge_id}_capture"
    assert await _capture_shown(core_engine, account_id, charge_id) == f"{charge_id}_capture"


async def test_a_capture_after_one_an_earlier_core_sent_goes_under_a_reference_of_its_own(
    core_engine: AsyncEngine, network: FakeNetwork, account_id: str
) -> None:
    """A core of the version before captures were counted, still running during the upgrade,
    captures a charge made since under `{charge}_capture` and leaves its count at 0; the
    network refuses. The next capture, at a core of this version, must not reuse the
    reference: the network would answer the refusal it keeps under it, for good."""
    payments = ledger_payments(core_engine, network)
    held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
    charge_id = held.latest_charge_id
    assert charge_id is not None
    # What the earlier core does: it records the amount asked, as every version does, counts
    # nothing, and sends the capture under the one reference it knows, which is refused.
    async with core_engine.begin() as db:
        await db.execute(
            text("UPDATE charges SET requested_capture_minor = 600 WHERE id = :id"),
            {"id": charge_id},
        )
    network.refuse(f"{charge_id}_capture", "card_declined", "Refused for now.")
    authorization_id = (await _authorization_of_charge(core_engine, charge_id)) or ""
    await network.capture(
        authorization_id=authorization_id, amount_minor=600, reference=f"{charge_id}_capture"
    )

    captured = await payments.capture_payment_intent(
        call(account_id, "cap", endpoint="CapturePaymentIntent"), held.id, 500, respond
    )
    assert isinstance(captured, Done)
    assert (captured.value.status, captured.value.amount_received_minor) == (Status.SUCCEEDED, 500)
    assert network.sent[-1] == f"{charge_id}_capture_2"
    assert await _capture_shown(core_engine, account_id, charge_id) == f"{charge_id}_capture_2"
    await _books_balance(core_engine, account_id)


async def _authorization_of_charge(engine: AsyncEngine, charge_id: str) -> str | None:
    async with engine.connect() as db:
        found = await db.execute(
            text("SELECT authorization_id FROM charges WHERE id = :id"), {"id": charge_id}
        )
        authorization_id: str | None = found.scalar_one()
    return authorization_id


async def _capture_column_default(engine: AsyncEngine, account_id: str, charge_id: str) -> int:
    """What a charge row gets when its insert does not name the count, as an earlier process
    inserts one: a copy of `charge_id`'s row under another id."""
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO charges (id, account_id, payment_intent_id, amount_minor, "
                "amount_captured_minor, amount_refunded_minor, currency, status, captured, "
                "capture_requested, payment_method_id, card, metadata, created_at, updated_at) "
                "SELECT 'ch_earlier', account_id, payment_intent_id, amount_minor, 0, 0, "
                "currency, status, false, false, payment_method_id, card, metadata, created_at, "
                "updated_at FROM charges WHERE account_id = :account AND id = :charge"
            ),
            {"account": account_id, "charge": charge_id},
        )
        found = await db.execute(
            text("SELECT capture_attempts FROM charges WHERE id = 'ch_earlier'")
        )
        counted: int = found.scalar_one()
    return counted


async def test_a_capture_in_flight_at_the_upgrade_is_looked_up_under_its_old_reference(
    pg_cluster: EmbeddedCluster,
) -> None:
    """A capture the earlier version sent under `{charge}_capture` and stopped before it stored
    the answer: after the upgrade its request resumes by looking that reference up, and the
    capture is neither sent again nor under another reference; the next capture of another
    charge made before the upgrade would get a new one."""
    network = FakeNetwork()
    with scratch_database(pg_cluster, "capture_attempts") as url:
        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            account_id = (
                await AccountsService(engine).create_account(radar_enabled=False)
            ).account.id
            payments = ledger_payments(engine, network)
            held = await pay(payments, account_id, "held", capture=CaptureMethod.MANUAL)
            charge_id = held.latest_charge_id
            assert charge_id is not None
            capture = call(account_id, "cap", endpoint="CapturePaymentIntent")
            record = await payments._claim(capture)
            record = await payments._start_capture(record, held.id, 700, CaptureParams())
        finally:
            await dispose(engine)

        # The earlier version's state: no count on the charge, and its capture sent under the
        # one reference it knew, the answer lost.
        command.downgrade(alembic_config("core", url), _BEFORE)
        authorization_id = (await _authorization_of(url, charge_id)) or ""
        await network.capture(
            authorization_id=authorization_id, amount_minor=700, reference=f"{charge_id}_capture"
        )

        upgrade("core", url)
        engine = make_engine(url, pool_size=2)
        try:
            payments = ledger_payments(engine, network)
            async with engine.connect() as db:
                charge = await ChargeRepository(db).get(account_id, charge_id)
            assert charge is not None
            assert (charge.capture_attempts, charge.capture_reference) == (
                1,
                f"{charge_id}_capture",
            )
            done = await payments.resume_capture(record, respond)
            assert isinstance(done, Done)
            assert (done.value.status, done.value.amount_received_minor) == (Status.SUCCEEDED, 700)
            assert network.sent.count(f"{charge_id}_capture") == 1
            assert network.looked_up[-1] == f"{charge_id}_capture"
            assert await _capture_shown(engine, account_id, charge_id) == f"{charge_id}_capture"
            await _books_balance(engine, account_id)
            # A row an earlier process inserts after the upgrade counts no capture yet.
            assert await _capture_column_default(engine, account_id, charge_id) == 0
        finally:
            await dispose(engine)

        command.downgrade(alembic_config("core", url), _BEFORE)
        engine = make_engine(url, pool_size=2)
        try:
            async with engine.connect() as db:
                columns = await db.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'charges'"
                    )
                )
                assert "capture_attempts" not in set(columns.scalars())
        finally:
            await dispose(engine)


async def _authorization_of(url: str, charge_id: str) -> str | None:
    engine = make_engine(url, pool_size=1)
    try:
        return await _authorization_of_charge(engine, charge_id)
    finally:
        await dispose(engine)
