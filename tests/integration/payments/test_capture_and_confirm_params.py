"""What a capture and a confirmation name besides the payment itself takes effect: a capture's
metadata reaches the intent and its statement descriptors the charge it captures, if and when
the network captures; a confirmation's receipt email and shipping reach the intent and the
charge it makes."""

from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.rpc import status_pb2
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.accounts.service import AccountsService
from remit.core.errors import ErrorKind, RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit.payments.domain import CaptureMethod, NewPaymentIntent, PaymentIntent, Status, Updated
from remit.payments.idempotency import KeyRecord
from remit.payments.service import CaptureParams, ConfirmParams, Done, PaymentsService, Replay
from remit.payments.tables import idempotency_keys
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.conftest import payments_with_core_hooks
from tests.integration.payments.test_payments_service import call, pay, respond
from tests.support.authorizations import let_authorization_expire
from tests.support.fake_network import FakeNetwork
from tests.support.statements import statements_sent

pytestmark = pytest.mark.anyio

SHIPPING = {
    "name": "Jenny Rosen",
    "phone": "+33 1 23 45 67 89",
    "address": {"line1": "2 Rue Royale", "city": "Paris", "country": "FR"},
}


async def _held(payments: PaymentsService, account_id: str, key: str) -> PaymentIntent:
    """An authorized intent awaiting capture, with metadata and descriptors of its own."""
    result = await payments.create_payment_intent(
        call(account_id, key),
        NewPaymentIntent(
            amount_minor=1000,
            currency="usd",
            capture_method=CaptureMethod.MANUAL,
            metadata={"order": "6735", "gift": "yes"},
            statement_descriptor="REMIT SHOP",
            statement_descriptor_suffix="AUTHORIZED",
        ),
        respond,
        confirm=ConfirmParams(payment_method_id="pm_visa"),
    )
    assert isinstance(result, Done)
    assert result.value.status is Status.REQUIRES_CAPTURE
    return result.value


async def test_a_capture_merges_its_metadata_and_describes_the_charge(
    payments: PaymentsService, account_id: str
) -> None:
    held = await _held(payments, account_id, "held-1")
    result = await payments.capture_payment_intent(
        call(account_id, "capture-1", endpoint="CapturePaymentIntent"),
        held.id,
        None,
        respond,
        CaptureParams(
            metadata={"shipped": "2026-12-06"},
            unset_metadata_keys=("gift",),
            statement_descriptor_suffix="ORDER 6735",
        ),
    )
    assert isinstance(result, Done)
    assert result.value.status is Status.SUCCEEDED
    assert result.value.metadata == {"order": "6735", "shipped": "2026-12-06"}
    stored = await payments.get_payment_intent(account_id, held.id)
    assert stored.metadata == {"order": "6735", "shipped": "2026-12-06"}
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert charge.captured
    # The suffix named replaces the charge's; the descriptor not named stays as it was.
    assert (charge.statement_descriptor, charge.statement_descriptor_suffix) == (
        "REMIT SHOP",
        "ORDER 6735",
    )


async def test_metadata_cleared_by_a_capture_is_replaced_by_what_it_sets(
    payments: PaymentsService, account_id: str
) -> None:
    held = await _held(payments, account_id, "held-2")
    result = await payments.capture_payment_intent(
        call(account_id, "capture-2", endpoint="CapturePaymentIntent"),
        held.id,
        500,
        respond,
        CaptureParams(clear_metadata=True, metadata={"partial": "yes"}),
    )
    assert isinstance(result, Done)
    assert result.value.metadata == {"partial": "yes"}
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert (charge.statement_descriptor, charge.statement_descriptor_suffix) == (
        "REMIT SHOP",
        "AUTHORIZED",
    )


async def test_a_capture_refused_for_its_metadata_writes_nothing(
    payments: PaymentsService, account_id: str
) -> None:
    held = await _held(payments, account_id, "held-3")
    too_many = {f"k{n}": "v" for n in range(49)}
    with pytest.raises(RemitError) as raised:
        await payments.capture_payment_intent(
            call(account_id, "capture-3", endpoint="CapturePaymentIntent"),
            held.id,
            None,
            respond,
            CaptureParams(metadata=too_many, statement_descriptor_suffix="NEVER"),
        )
    assert raised.value.param == "metadata"
    intent = await payments.get_payment_intent(account_id, held.id)
    assert (intent.status, intent.metadata) == (Status.REQUIRES_CAPTURE, held.metadata)
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert (charge.captured, charge.capture_requested, charge.statement_descriptor_suffix) == (
        False,
        False,
        "AUTHORIZED",
    )


def _capture(
    payments: PaymentsService,
    account_id: str,
    key: str,
    intent_id: str,
    params: CaptureParams,
) -> Awaitable[Done[PaymentIntent] | Replay]:
    return payments.capture_payment_intent(
        call(account_id, key, endpoint="CapturePaymentIntent"), intent_id, None, respond, params
    )


async def _unchanged(payments: PaymentsService, held: PaymentIntent) -> None:
    """The held intent and its charge as they were before any capture was asked for."""
    intent = await payments.get_payment_intent(held.account_id, held.id)
    assert (intent.status, intent.metadata, intent.amount_received_minor) == (
        Status.REQUIRES_CAPTURE,
        {"order": "6735", "gift": "yes"},
        0,
    )
    charge, _ = await payments.get_charge(held.account_id, held.latest_charge_id or "")
    assert (
        charge.captured,
        charge.capture_requested,
        charge.requested_capture_changes,
        charge.statement_descriptor,
        charge.statement_descriptor_suffix,
    ) == (False, False, None, "REMIT SHOP", "AUTHORIZED")


async def test_a_capture_the_network_refuses_changes_neither_metadata_nor_descriptors(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """Stripe's capture is all or nothing: refused, it leaves the intent and the charge as
    they were, and its retry replays the refusal without changing them either."""
    held = await _held(payments, account_id, "held-refused")
    network.refuse(
        f"{held.latest_charge_id}_capture",
        "authorization_voided",
        "This authorization was voided and cannot be captured.",
    )
    params = CaptureParams(
        metadata={"shipped": "yes"},
        unset_metadata_keys=("gift",),
        statement_descriptor="REMIT STORE",
        statement_descriptor_suffix="ORDER 6735",
    )
    with pytest.raises(RemitError) as refused:
        await _capture(payments, account_id, "capture-refused", held.id, params)
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "authorization_voided",
    )
    await _unchanged(payments, held)
    replayed = await _capture(payments, account_id, "capture-refused", held.id, params)
    assert isinstance(replayed, Replay)
    assert replayed.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    await _unchanged(payments, held)
    assert network.sent.count(f"{held.latest_charge_id}_capture") == 1


async def test_a_capture_waiting_on_the_network_changes_nothing_until_its_retry_captures(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """The changes are recorded with the capture request and applied with the network's
    approval: a capture left at attempt_created by an unreachable network has changed nothing
    yet; the retry that finishes it applies them, on top of what changed meanwhile, and its
    replay does not apply them again."""
    held = await _held(payments, account_id, "held-4")
    params = CaptureParams(
        metadata={"shipped": "yes"},
        unset_metadata_keys=("gift",),
        statement_descriptor="REMIT STORE",
    )
    # Every send and every look-up fails: the capture stays at attempt_created.
    network.faults = ["before"] * 4
    with pytest.raises(RemitError) as unreachable:
        await _capture(payments, account_id, "capture-4", held.id, params)
    assert unreachable.value.kind is ErrorKind.UNAVAILABLE
    waiting = await payments.get_payment_intent(account_id, held.id)
    assert (waiting.status, waiting.metadata) == (Status.REQUIRES_CAPTURE, held.metadata)
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert (charge.captured, charge.capture_requested, charge.statement_descriptor) == (
        False,
        True,
        "REMIT SHOP",
    )

    # An update while the capture waits: the capture's change applies on top of it.
    updated = await payments.update_payment_intent(
        call(account_id, "update-4", endpoint="UpdatePaymentIntent"),
        held.id,
        Updated(at=waiting.updated_at),
        respond,
        metadata=({"packed": "yes"}, [], False),
    )
    assert isinstance(updated, Done)

    resumed = await _capture(payments, account_id, "capture-4", held.id, params)
    assert isinstance(resumed, Done)
    assert resumed.value.metadata == {"order": "6735", "packed": "yes", "shipped": "yes"}
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert (
        charge.captured,
        charge.capture_requested,
        charge.requested_capture_changes,
        charge.statement_descriptor,
        charge.statement_descriptor_suffix,
    ) == (True, False, None, "REMIT STORE", "AUTHORIZED")
    replayed = await _capture(payments, account_id, "capture-4", held.id, params)
    assert replayed == Replay(code=0, body=respond(resumed.value))
    # The replay wrote nothing: the intent is as the capture left it.
    assert await payments.get_payment_intent(account_id, held.id) == resumed.value
    assert network.sent.count(f"{charge.id}_capture") == 1


async def test_the_completer_applies_the_changes_of_a_capture_whose_answer_was_lost(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    """The network captured, but its answer was lost and no look-up got through: the request
    gave up at attempt_created. The completer, which knows nothing of the request but its key,
    finishes the capture with the changes recorded on the charge; the client's retry replays."""
    held = await _held(payments, account_id, "held-7")
    params = CaptureParams(clear_metadata=True, metadata={"fulfilled": "yes"})
    network.faults = ["after"]
    network.lookup_faults = 3
    with pytest.raises(RemitError):
        await _capture(payments, account_id, "capture-7", held.id, params)
    assert (await payments.get_payment_intent(account_id, held.id)).metadata == held.metadata
    async with core_engine.begin() as db:
        await db.execute(
            idempotency_keys.update()
            .where(idempotency_keys.c.key == "capture-7")
            .values(last_run_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 1))
        )

    async def resume(record: KeyRecord) -> object:
        return await payments.resume_capture(record, respond)

    assert await payments.complete_abandoned(resume) == 1
    finished = await payments.get_payment_intent(account_id, held.id)
    assert (finished.status, finished.metadata) == (Status.SUCCEEDED, {"fulfilled": "yes"})
    replayed = await _capture(payments, account_id, "capture-7", held.id, params)
    assert replayed == Replay(code=0, body=respond(finished))
    reference = f"{held.latest_charge_id}_capture"
    assert list(network.operations) == [reference]


async def test_a_confirmation_gives_the_intent_and_its_charge_its_receipt_email_and_shipping(
    payments: PaymentsService, account_id: str
) -> None:
    created = await payments.create_payment_intent(
        call(account_id, "create-5"),
        NewPaymentIntent(amount_minor=1200, currency="usd", receipt_email="old@example.com"),
        respond,
    )
    assert isinstance(created, Done)
    result = await payments.confirm_payment_intent(
        call(account_id, "confirm-5", endpoint="ConfirmPaymentIntent"),
        created.value.id,
        ConfirmParams(
            payment_method_id="pm_visa", receipt_email="jenny@example.com", shipping=SHIPPING
        ),
        respond,
    )
    assert isinstance(result, Done)
    intent = result.value
    assert (intent.status, intent.receipt_email, intent.shipping) == (
        Status.SUCCEEDED,
        "jenny@example.com",
        SHIPPING,
    )
    stored = await payments.get_payment_intent(account_id, intent.id)
    assert (stored.receipt_email, stored.shipping) == ("jenny@example.com", SHIPPING)
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id or "")
    assert (charge.receipt_email, charge.shipping) == ("jenny@example.com", SHIPPING)


async def test_a_confirmation_without_them_keeps_the_intents(
    payments: PaymentsService, account_id: str
) -> None:
    created = await payments.create_payment_intent(
        call(account_id, "create-6"),
        NewPaymentIntent(
            amount_minor=1200, currency="usd", receipt_email="kept@example.com", shipping=SHIPPING
        ),
        respond,
    )
    assert isinstance(created, Done)
    result = await payments.confirm_payment_intent(
        call(account_id, "confirm-6", endpoint="ConfirmPaymentIntent"),
        created.value.id,
        ConfirmParams(payment_method_id="pm_visa"),
        respond,
    )
    assert isinstance(result, Done)
    assert (result.value.receipt_email, result.value.shipping) == ("kept@example.com", SHIPPING)
    charge, _ = await payments.get_charge(account_id, result.value.latest_charge_id or "")
    assert (charge.receipt_email, charge.shipping) == ("kept@example.com", SHIPPING)


async def _confirmed(
    payments: PaymentsService, account_id: str, key: str, confirm: ConfirmParams
) -> PaymentIntent:
    """An intent with a receipt email and shipping of its own, confirmed with `confirm`."""
    created = await payments.create_payment_intent(
        call(account_id, f"create-{key}"),
        NewPaymentIntent(
            amount_minor=1200, currency="usd", receipt_email="old@example.com", shipping=SHIPPING
        ),
        respond,
    )
    assert isinstance(created, Done)
    result = await payments.confirm_payment_intent(
        call(account_id, key, endpoint="ConfirmPaymentIntent"), created.value.id, confirm, respond
    )
    assert isinstance(result, Done)
    assert result.value.status is Status.SUCCEEDED
    return result.value


async def test_a_confirmation_clears_the_receipt_email_and_shipping_of_the_intent_and_charge(
    payments: PaymentsService, account_id: str
) -> None:
    intent = await _confirmed(
        payments,
        account_id,
        "confirm-clear",
        ConfirmParams(payment_method_id="pm_visa", clear_receipt_email=True, clear_shipping=True),
    )
    assert (intent.receipt_email, intent.shipping) == (None, None)
    stored = await payments.get_payment_intent(account_id, intent.id)
    assert (stored.receipt_email, stored.shipping) == (None, None)
    charge, _ = await payments.get_charge(account_id, intent.latest_charge_id or "")
    assert (charge.receipt_email, charge.shipping) == (None, None)


async def test_a_confirmation_clears_one_and_keeps_or_replaces_the_other(
    payments: PaymentsService, account_id: str
) -> None:
    no_email = await _confirmed(
        payments,
        account_id,
        "confirm-clear-email",
        ConfirmParams(payment_method_id="pm_visa", clear_receipt_email=True),
    )
    charge, _ = await payments.get_charge(account_id, no_email.latest_charge_id or "")
    assert (no_email.receipt_email, no_email.shipping) == (None, SHIPPING)
    assert (charge.receipt_email, charge.shipping) == (None, SHIPPING)
    no_shipping = await _confirmed(
        payments,
        account_id,
        "confirm-clear-shipping",
        ConfirmParams(
            payment_method_id="pm_visa", receipt_email="new@example.com", clear_shipping=True
        ),
    )
    charge, _ = await payments.get_charge(account_id, no_shipping.latest_charge_id or "")
    assert (no_shipping.receipt_email, no_shipping.shipping) == ("new@example.com", None)
    assert (charge.receipt_email, charge.shipping) == ("new@example.com", None)


@pytest.mark.parametrize(
    ("confirm", "param"),
    [
        (ConfirmParams(receipt_email="new@example.com", clear_receipt_email=True), "receipt_email"),
        (ConfirmParams(shipping=SHIPPING, clear_shipping=True), "shipping"),
    ],
)
async def test_a_confirmation_that_both_sets_and_clears_a_value_is_refused_naming_it(
    payments: PaymentsService,
    network: FakeNetwork,
    account_id: str,
    confirm: ConfirmParams,
    param: str,
) -> None:
    created = await payments.create_payment_intent(
        call(account_id, "create-both"),
        NewPaymentIntent(amount_minor=1200, currency="usd", receipt_email="old@example.com"),
        respond,
    )
    assert isinstance(created, Done)
    with pytest.raises(RemitError) as refused:
        await payments.confirm_payment_intent(
            call(account_id, "confirm-both", endpoint="ConfirmPaymentIntent"),
            created.value.id,
            replace(confirm, payment_method_id="pm_visa"),
            respond,
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, param)
    intent = await payments.get_payment_intent(account_id, created.value.id)
    assert (intent.status, intent.receipt_email) == (
        Status.REQUIRES_PAYMENT_METHOD,
        "old@example.com",
    )
    assert network.sent == []


# --- What they cost: bound into the writes the calls make anyway ---------------------------


async def _capture_statements(
    engine: AsyncEngine, account_id: str, key: str, params: CaptureParams
) -> list[str]:
    payments = payments_with_core_hooks(engine)
    held = await pay(payments, account_id, f"held-{key}", capture=CaptureMethod.MANUAL)
    with statements_sent(engine) as statements:
        result = await payments.capture_payment_intent(
            call(account_id, key, endpoint="CapturePaymentIntent"), held.id, None, respond, params
        )
    assert isinstance(result, Done)
    return statements


async def test_metadata_and_descriptors_on_a_capture_add_no_statement(
    core_engine: AsyncEngine,
) -> None:
    """They are recorded in the charge update that requests the capture, and applied in the
    intent and charge updates that record it."""
    account_id = (await AccountsService(core_engine).create_account()).account.id
    await _capture_statements(core_engine, account_id, "warm-up", CaptureParams())
    plain = await _capture_statements(core_engine, account_id, "plain", CaptureParams())
    described = await _capture_statements(
        core_engine,
        account_id,
        "described",
        CaptureParams(statement_descriptor="REMIT", statement_descriptor_suffix="ORDER 1"),
    )
    with_metadata = await _capture_statements(
        core_engine, account_id, "metadata", CaptureParams(metadata={"k": "v"})
    )
    assert len(described) == len(plain)
    assert len(with_metadata) == len(plain)


async def _confirm_statements(
    engine: AsyncEngine, account_id: str, key: str, confirm: ConfirmParams
) -> list[str]:
    payments = payments_with_core_hooks(engine)
    created = await payments.create_payment_intent(
        call(account_id, f"create-{key}"),
        NewPaymentIntent(amount_minor=800, currency="usd"),
        respond,
    )
    assert isinstance(created, Done)
    with statements_sent(engine) as statements:
        result = await payments.confirm_payment_intent(
            call(account_id, key, endpoint="ConfirmPaymentIntent"),
            created.value.id,
            confirm,
            respond,
        )
    assert isinstance(result, Done)
    assert result.value.status is Status.SUCCEEDED
    return statements


async def test_receipt_email_and_shipping_set_or_cleared_on_a_confirmation_add_no_statement(
    core_engine: AsyncEngine,
) -> None:
    account_id = (await AccountsService(core_engine).create_account(radar_enabled=False)).account.id
    warm = ConfirmParams(payment_method_id="pm_visa")
    await _confirm_statements(core_engine, account_id, "warm-up", warm)
    plain = await _confirm_statements(core_engine, account_id, "plain", warm)
    detailed = await _confirm_statements(
        core_engine,
        account_id,
        "detailed",
        ConfirmParams(
            payment_method_id="pm_visa", receipt_email="a@example.com", shipping=SHIPPING
        ),
    )
    cleared = await _confirm_statements(
        core_engine,
        account_id,
        "cleared",
        ConfirmParams(payment_method_id="pm_visa", clear_receipt_email=True, clear_shipping=True),
    )
    assert len(detailed) == len(cleared) == len(plain)


async def test_a_second_capture_while_one_is_in_flight_is_a_conflict_that_changes_nothing(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """Two captures of one intent under different keys: while the first waits on the network,
    the second is refused with a retryable conflict and records nothing (its metadata must not
    replace the first's); once the first has captured, the second is refused by the state."""
    held = await _held(payments, account_id, "held-7")
    network.faults = ["before"] * 4
    with pytest.raises(RemitError) as unreachable:
        await _capture(
            payments, account_id, "capture-7a", held.id, CaptureParams(metadata={"by": "a"})
        )
    assert unreachable.value.kind is ErrorKind.UNAVAILABLE

    with pytest.raises(RemitError) as conflict:
        await _capture(
            payments, account_id, "capture-7b", held.id, CaptureParams(metadata={"by": "b"})
        )
    assert (conflict.value.kind, conflict.value.code) == (
        ErrorKind.CONFLICT,
        "payment_intent_unexpected_state",
    )
    charge, _ = await payments.get_charge(account_id, held.latest_charge_id or "")
    assert CaptureParams.from_json(charge.requested_capture_changes).metadata == {"by": "a"}

    first = await _capture(
        payments, account_id, "capture-7a", held.id, CaptureParams(metadata={"by": "a"})
    )
    assert isinstance(first, Done)
    assert (first.value.status, first.value.metadata["by"]) == (Status.SUCCEEDED, "a")
    # The refused second key stored nothing: its retry runs afresh, and meets the state.
    with pytest.raises(RemitError) as late:
        await _capture(
            payments, account_id, "capture-7b", held.id, CaptureParams(metadata={"by": "b"})
        )
    assert (late.value.kind, late.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "payment_intent_unexpected_state",
    )
    assert (await payments.get_payment_intent(account_id, held.id)).metadata["by"] == "a"
    assert network.sent.count(f"{charge.id}_capture") == 1


async def test_a_cancel_that_loses_the_race_to_a_capture_is_refused_and_the_capture_stands(
    payments: PaymentsService, network: FakeNetwork, account_id: str, core_engine: AsyncEngine
) -> None:
    """A capture reaches the network while a cancel (or the 7-day expiry) asks it to release
    the same authorization: the network refuses the release as already captured. The intent
    must then not be canceled, or captured money would sit on an intent (and a ledger) that
    say it was released; the capture's retry makes it succeeded."""
    held = await _held(payments, account_id, "held-8")
    # The capture reaches the network, its answer is lost, and the network stays out of reach
    # for look-ups: the capture waits at attempt_created.
    network.faults = ["after"]
    network.lookup_faults = 10
    with pytest.raises(RemitError):
        await _capture(payments, account_id, "capture-8", held.id, CaptureParams())
    network.lookup_faults = 0
    void = f"{held.latest_charge_id}_void"
    network.refuse(void, "charge_already_captured", "This authorization was already captured.")

    cancel = call(account_id, "cancel-8", endpoint="CancelPaymentIntent")
    with pytest.raises(RemitError) as refused:
        await payments.cancel_payment_intent(cancel, held.id, None, respond)
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "payment_intent_unexpected_state",
    )
    # It carries the intent, as every refusal by an intent's state does.
    assert isinstance(refused.value.related, pb.PaymentIntent)
    assert (refused.value.related.id, refused.value.related.status) == (
        held.id,
        pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE,
    )
    # The refusal is the cancel's answer, stored: its retry replays it, the network is not
    # asked again, and the completer has nothing left to finish.
    replayed = await payments.cancel_payment_intent(cancel, held.id, None, respond)
    assert isinstance(replayed, Replay)
    assert replayed.code != 0
    stored = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(replayed.body).details[0].Unpack(stored)
    embedded = pb.PaymentIntent()
    assert stored.payment_intent.Unpack(embedded)
    assert embedded.id == held.id
    assert network.sent.count(void) == 1
    await let_authorization_expire(core_engine, held.id)
    async with core_engine.begin() as db:
        assert not await payments.expire_authorization(db, account_id, held.id)
    assert network.sent.count(void) == 2
    async with core_engine.begin() as db:
        unfinished = await db.scalar(
            idempotency_keys.select()
            .with_only_columns(func.count())
            .where(idempotency_keys.c.key == "cancel-8")
            .where(idempotency_keys.c.response_code.is_(None))
        )
    assert unfinished == 0
    assert (await payments.get_payment_intent(account_id, held.id)).status is (
        Status.REQUIRES_CAPTURE
    )

    # Found at the network by its look-up: it stands, though the 7 days have passed since.
    captured = await _capture(payments, account_id, "capture-8", held.id, CaptureParams())
    assert isinstance(captured, Done)
    assert captured.value.status is Status.SUCCEEDED


async def _canceled_first(
    payments: PaymentsService, network: FakeNetwork, held: PaymentIntent, name: str
) -> str:
    """With a capture of `held` recorded but left at attempt_created by an unreachable network,
    a cancel releases the authorization first: the network has voided it, and refuses the
    capture when its retry asks (as the acquirer refuses a capture of a voided authorization).
    The capture's network reference."""
    canceled = await payments.cancel_payment_intent(
        call(held.account_id, f"cancel-{name}", endpoint="CancelPaymentIntent"),
        held.id,
        None,
        respond,
    )
    assert isinstance(canceled, Done)
    assert canceled.value.status is Status.CANCELED
    capture = f"{held.latest_charge_id}_capture"
    network.refuse(
        capture, "authorization_voided", "This authorization was voided and cannot be captured."
    )
    return capture


async def _still_canceled(payments: PaymentsService, held: PaymentIntent) -> None:
    intent = await payments.get_payment_intent(held.account_id, held.id)
    assert (intent.status, intent.amount_received_minor, intent.metadata) == (
        Status.CANCELED,
        0,
        held.metadata,
    )
    charge, _ = await payments.get_charge(held.account_id, held.latest_charge_id or "")
    assert (charge.captured, charge.capture_requested) == (False, False)


async def test_a_capture_that_loses_the_race_to_a_cancel_answers_as_for_a_canceled_intent(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """The network refuses the capture as `authorization_voided`, a code of its own. By then
    the intent is canceled, and the capture answers what Stripe answers any capture of a
    canceled intent: payment_intent_unexpected_state naming the status, with the intent. The
    answer is stored: the retry replays it and the intent stays canceled."""
    held = await _held(payments, account_id, "held-raced")
    network.faults = ["before"] * 4
    with pytest.raises(RemitError) as unreachable:
        await _capture(payments, account_id, "capture-raced", held.id, CaptureParams())
    assert unreachable.value.kind is ErrorKind.UNAVAILABLE
    capture = await _canceled_first(payments, network, held, "raced")
    with pytest.raises(RemitError) as refused:
        await _capture(payments, account_id, "capture-raced", held.id, CaptureParams())
    assert capture in network.looked_up
    assert (refused.value.kind, refused.value.code) == (
        ErrorKind.FAILED_PRECONDITION,
        "payment_intent_unexpected_state",
    )
    assert refused.value.message == (
        "You cannot capture this PaymentIntent because it has a status of canceled."
    )
    assert isinstance(refused.value.related, pb.PaymentIntent)
    assert (refused.value.related.id, refused.value.related.status) == (
        held.id,
        pb.PAYMENT_INTENT_STATUS_CANCELED,
    )
    await _still_canceled(payments, held)

    asked = (len(network.sent), len(network.looked_up))
    replayed = await _capture(payments, account_id, "capture-raced", held.id, CaptureParams())
    assert isinstance(replayed, Replay)
    assert replayed.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    stored = common_pb2.ErrorDetail()
    assert status_pb2.Status.FromString(replayed.body).details[0].Unpack(stored)
    assert stored.code == "payment_intent_unexpected_state"
    embedded = pb.PaymentIntent()
    assert stored.payment_intent.Unpack(embedded)
    assert (embedded.id, embedded.status) == (held.id, pb.PAYMENT_INTENT_STATUS_CANCELED)
    assert (len(network.sent), len(network.looked_up)) == asked
    await _still_canceled(payments, held)


async def test_over_grpc_a_capture_that_loses_the_race_to_a_cancel_names_the_status(
    payments: PaymentsService, payments_stub: Any, network: FakeNetwork, account_id: str
) -> None:
    held = await _held(payments, account_id, "held-rpc")
    metadata = ((ACCOUNT_KEY, account_id), (IDEMPOTENCY_KEY, "capture-rpc"))
    request = pb.CapturePaymentIntentRequest(id=held.id)
    network.faults = ["before"] * 4
    with pytest.raises(grpc.aio.AioRpcError) as unreachable:
        await payments_stub.CapturePaymentIntent(request, metadata=metadata)
    assert unreachable.value.code() is grpc.StatusCode.UNAVAILABLE
    await _canceled_first(payments, network, held, "rpc")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CapturePaymentIntent(request, metadata=metadata)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "status of canceled" in (refused.value.details() or "")
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert detail.code == "payment_intent_unexpected_state"
    embedded = pb.PaymentIntent()
    assert detail.payment_intent.Unpack(embedded)
    assert (embedded.id, embedded.status) == (held.id, pb.PAYMENT_INTENT_STATUS_CANCELED)
    await _still_canceled(payments, held)


async def test_an_update_that_would_take_a_waiting_capture_past_50_keys_is_refused(
    payments: PaymentsService, network: FakeNetwork, account_id: str
) -> None:
    """The capture's change was checked against the intent's metadata when it was requested,
    and applies on top of what the intent holds when the network captures. An update in
    between is checked against both, so the capture cannot end with more than 50 keys; an
    update that keeps within them still goes through."""
    held = await _held(payments, account_id, "held-limit")
    capture_keys = {f"capture_{i}": "v" for i in range(40)}
    network.faults = ["before"] * 4
    with pytest.raises(RemitError):
        await _capture(
            payments, account_id, "capture-limit", held.id, CaptureParams(metadata=capture_keys)
        )

    too_many = {f"update_{i}": "v" for i in range(9)}
    with pytest.raises(RemitError) as refused:
        await payments.update_payment_intent(
            call(account_id, "update-limit", endpoint="UpdatePaymentIntent"),
            held.id,
            Updated(at=held.updated_at),
            respond,
            metadata=(too_many, [], False),
        )
    assert (refused.value.kind, refused.value.param) == (ErrorKind.INVALID_ARGUMENT, "metadata")
    assert (await payments.get_payment_intent(account_id, held.id)).metadata == held.metadata

    within = {f"update_{i}": "v" for i in range(8)}
    updated = await payments.update_payment_intent(
        call(account_id, "update-within", endpoint="UpdatePaymentIntent"),
        held.id,
        Updated(at=held.updated_at),
        respond,
        metadata=(within, [], False),
    )
    assert isinstance(updated, Done)
    captured = await _capture(
        payments, account_id, "capture-limit", held.id, CaptureParams(metadata=capture_keys)
    )
    assert isinstance(captured, Done)
    assert len(captured.value.metadata) == 50
