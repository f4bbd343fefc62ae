"""Over gRPC a payment's statement descriptors are held to Stripe's rules as the REST facade
holds them (`remit.core.statement_descriptors`): a create, an update or a capture giving one
that breaks them is refused INVALID_ARGUMENT naming the field, before anything is stored or
its key claimed. A descriptor stored before the rules reached gRPC callers is read as it is,
and does not stop its intent from being updated or captured."""

from typing import Any

import grpc
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.grpcutil.errors import detail_from_rpc_error
from remit.payments.tables import charges, idempotency_keys, payment_intents
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support.accounts import call_metadata

pytestmark = pytest.mark.anyio

# Each breaks one rule: (field, value, error code, words of the message).
BROKEN = [
    ("statement_descriptor", "SHOP <b>", "invalid_characters", "may not contain"),
    ("statement_descriptor", "МАГАЗИН ONE", "invalid_characters", "only Latin characters"),
    ("statement_descriptor", "2024-11-22", "parameter_invalid", "at least one letter"),
    ("statement_descriptor", "SHOP", "parameter_invalid", "at least 5 characters"),
    ("statement_descriptor_suffix", 'ORDER "7"', "invalid_characters", "may not contain"),
    ("statement_descriptor_suffix", "ORDER\t7", "invalid_characters", "only Latin characters"),
    ("statement_descriptor_suffix", "", "parameter_invalid", "may not be empty"),
]


def _refused_as(refused: grpc.aio.AioRpcError, field: str, code: str, words: str) -> None:
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = refused.details() or ""
    assert field in details
    assert words in details
    detail = detail_from_rpc_error(refused)
    assert detail is not None
    assert (detail.type, detail.code, detail.param) == ("invalid_request_error", code, field)


async def _keys_named(engine: AsyncEngine, key: str) -> int:
    async with engine.connect() as db:
        count = await db.scalar(select(func.count()).where(idempotency_keys.c.key == key))
    return int(count or 0)


async def _intents_of(engine: AsyncEngine, account_id: str) -> int:
    async with engine.connect() as db:
        query = select(func.count()).where(payment_intents.c.account_id == account_id)
        return int(await db.scalar(query) or 0)


async def _authorized(stub: Any, account_id: str, key: str = "authorize") -> pb.PaymentIntent:
    reply = await stub.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(
            amount=2000,
            currency="usd",
            payment_method="pm_visa",
            confirm=True,
            capture_method=pb.PAYMENT_INTENT_CAPTURE_METHOD_MANUAL,
        ),
        metadata=call_metadata(account_id, key),
    )
    intent: pb.PaymentIntent = reply.payment_intent
    assert intent.status == pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE
    return intent


@pytest.mark.parametrize("confirm", [False, True])
@pytest.mark.parametrize(("field", "value", "code", "words"), BROKEN)
async def test_a_create_with_a_descriptor_breaking_the_rules_is_refused(
    payments_stub: Any,
    account_id: str,
    core_engine: AsyncEngine,
    confirm: bool,
    field: str,
    value: str,
    code: str,
    words: str,
) -> None:
    request = pb.CreatePaymentIntentRequest(
        amount=1500, currency="usd", payment_method="pm_visa", confirm=confirm
    )
    setattr(request, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CreatePaymentIntent(
            request, metadata=call_metadata(account_id, "create")
        )
    _refused_as(refused.value, field, code, words)
    assert await _intents_of(core_engine, account_id) == 0
    assert await _keys_named(core_engine, "create") == 0


async def test_a_create_with_descriptors_keeping_the_rules_stores_them(
    payments_stub: Any, account_id: str
) -> None:
    reply = await payments_stub.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(
            amount=1500,
            currency="usd",
            statement_descriptor="CAFÉ MÜLLER",
            statement_descriptor_suffix="6735",
        ),
        metadata=call_metadata(account_id, "create"),
    )
    intent = reply.payment_intent
    assert (intent.statement_descriptor, intent.statement_descriptor_suffix) == (
        "CAFÉ MÜLLER",
        "6735",
    )


@pytest.mark.parametrize(
    ("field", "value", "code", "words"), [case for case in BROKEN if case[1] != ""]
)
async def test_an_update_setting_a_descriptor_breaking_the_rules_is_refused(
    payments_stub: Any,
    account_id: str,
    core_engine: AsyncEngine,
    field: str,
    value: str,
    code: str,
    words: str,
) -> None:
    create = pb.CreatePaymentIntentRequest(amount=1500, currency="usd")
    setattr(create, field, "REMIT STORE")
    created = await payments_stub.CreatePaymentIntent(
        create, metadata=call_metadata(account_id, "create")
    )
    intent_id = created.payment_intent.id
    request = pb.UpdatePaymentIntentRequest(id=intent_id, description="changed")
    setattr(request, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.UpdatePaymentIntent(
            request, metadata=call_metadata(account_id, "update")
        )
    _refused_as(refused.value, field, code, words)
    assert await _keys_named(core_engine, "update") == 0
    got = await payments_stub.GetPaymentIntent(
        pb.GetPaymentIntentRequest(id=intent_id), metadata=call_metadata(account_id)
    )
    assert (getattr(got.payment_intent, field), got.payment_intent.description) == (
        "REMIT STORE",
        "",
    )


async def test_an_update_may_clear_a_descriptor(payments_stub: Any, account_id: str) -> None:
    """An empty value clears a descriptor on update: it is not a descriptor given."""
    created = await payments_stub.CreatePaymentIntent(
        pb.CreatePaymentIntentRequest(
            amount=1500,
            currency="usd",
            statement_descriptor="REMIT STORE",
            statement_descriptor_suffix="6735",
        ),
        metadata=call_metadata(account_id, "create"),
    )
    updated = await payments_stub.UpdatePaymentIntent(
        pb.UpdatePaymentIntentRequest(
            id=created.payment_intent.id, statement_descriptor="", statement_descriptor_suffix=""
        ),
        metadata=call_metadata(account_id, "update"),
    )
    intent = updated.payment_intent
    assert not intent.HasField("statement_descriptor")
    assert not intent.HasField("statement_descriptor_suffix")


@pytest.mark.parametrize(("field", "value", "code", "words"), BROKEN)
async def test_a_capture_with_a_descriptor_breaking_the_rules_is_refused(
    payments_stub: Any,
    account_id: str,
    core_engine: AsyncEngine,
    field: str,
    value: str,
    code: str,
    words: str,
) -> None:
    intent = await _authorized(payments_stub, account_id)
    request = pb.CapturePaymentIntentRequest(id=intent.id)
    setattr(request, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payments_stub.CapturePaymentIntent(
            request, metadata=call_metadata(account_id, "capture")
        )
    _refused_as(refused.value, field, code, words)
    # Nothing captured, and the key left free for the corrected request.
    assert await _keys_named(core_engine, "capture") == 0
    corrected = pb.CapturePaymentIntentRequest(id=intent.id)
    setattr(corrected, field, "ORDER 6735")
    captured = await payments_stub.CapturePaymentIntent(
        corrected, metadata=call_metadata(account_id, "capture")
    )
    assert captured.payment_intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    charge = await payments_stub.GetCharge(
        pb.GetChargeRequest(id=intent.latest_charge), metadata=call_metadata(account_id)
    )
    assert getattr(charge.charge, field) == "ORDER 6735"


async def test_descriptors_stored_before_the_rules_are_read_and_kept_by_other_changes(
    payments_stub: Any, account_id: str, core_engine: AsyncEngine
) -> None:
    intent = await _authorized(payments_stub, account_id)
    old = {"statement_descriptor": "OLD*SHOP", "statement_descriptor_suffix": "<1>"}
    async with core_engine.begin() as db:
        await db.execute(update(payment_intents).where(payment_intents.c.id == intent.id), old)
        await db.execute(update(charges).where(charges.c.id == intent.latest_charge), old)

    got = await payments_stub.GetPaymentIntent(
        pb.GetPaymentIntentRequest(id=intent.id), metadata=call_metadata(account_id)
    )
    assert got.payment_intent.statement_descriptor == "OLD*SHOP"
    updated = await payments_stub.UpdatePaymentIntent(
        pb.UpdatePaymentIntentRequest(id=intent.id, metadata={"order": "6735"}),
        metadata=call_metadata(account_id, "update"),
    )
    assert updated.payment_intent.statement_descriptor_suffix == "<1>"
    captured = await payments_stub.CapturePaymentIntent(
        pb.CapturePaymentIntentRequest(id=intent.id), metadata=call_metadata(account_id, "capture")
    )
    assert captured.payment_intent.status == pb.PAYMENT_INTENT_STATUS_SUCCEEDED
    charge = await payments_stub.GetCharge(
        pb.GetChargeRequest(id=intent.latest_charge), metadata=call_metadata(account_id)
    )
    assert (charge.charge.statement_descriptor, charge.charge.statement_descriptor_suffix) == (
        "OLD*SHOP",
        "<1>",
    )
