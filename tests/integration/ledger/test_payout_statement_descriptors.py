"""A payout's statement descriptor is held to Stripe's rules for one, the same rules a
payment's descriptors follow (`remit.core.statement_descriptors`): at most 22 characters,
Latin ones only, none of `< > \\ ' " *`; unlike a payment's full descriptor it needs no letter.
A refused payout moves no money. A payout stored before the rules is read as it is."""

import grpc
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from remit.core.clock import FixedClock
from remit.core.errors import RemitError
from remit.grpcutil.errors import detail_from_rpc_error
from remit.grpcutil.metadata import ACCOUNT_KEY
from remit.ledger.service import LedgerService
from remit.ledger.tables import payouts
from remit_api.ledger.v1 import ledger_pb2 as pb
from tests.integration.ledger.test_derived_ids_over_grpc import ledger_stub
from tests.integration.ledger.test_payouts import available, fund

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("descriptor", "code", "words"),
    [
        ("PAYOUT <JUNE>", "invalid_characters", "may not contain"),
        ("PAYOUT*JUNE", "invalid_characters", "may not contain"),
        ("AUSZAHLUNG €", "invalid_characters", "only Latin characters"),
        ("PAYOUT\nJUNE", "invalid_characters", "only Latin characters"),
        ("", "parameter_invalid", "may not be empty"),
    ],
)
async def test_a_payout_with_a_descriptor_breaking_the_rules_is_refused_over_grpc(
    core_engine: AsyncEngine,
    account_id: str,
    clock: FixedClock,
    descriptor: str,
    code: str,
    words: str,
) -> None:
    service = LedgerService(core_engine, clock)
    net = await fund(core_engine, account_id, clock, 1_000)
    async with ledger_stub(service) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CreatePayout(
                pb.CreatePayoutRequest(amount=100, currency="usd", statement_descriptor=descriptor),
                metadata=((ACCOUNT_KEY, account_id),),
            )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert "statement_descriptor" in details
    assert words in details
    detail = detail_from_rpc_error(refused.value)
    assert detail is not None
    assert (detail.code, detail.param) == (code, "statement_descriptor")
    assert await available(service, account_id) == net
    assert (await service.list_payouts(account_id, limit=10))[0] == []


async def test_a_payout_descriptor_over_22_characters_is_refused_by_the_ledger_itself(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    """Over gRPC the field's declared length refuses it first; a caller of the service is
    held to the same 22."""
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    with pytest.raises(RemitError) as refused:
        await service.create_payout(
            account_id, amount=100, currency="usd", statement_descriptor="P" * 23
        )
    assert (refused.value.code, refused.value.param) == (
        "parameter_invalid",
        "statement_descriptor",
    )
    assert refused.value.message == "Invalid string: PPPPPPPPPPPP...; must be at most 22 characters"


@pytest.mark.parametrize("descriptor", ["2024-06-30", "PAYOUT JUNE", "Überweisung 6", "P" * 22])
async def test_a_payout_descriptor_keeping_the_rules_needs_no_letter(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock, descriptor: str
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    async with ledger_stub(service) as stub:
        reply = await stub.CreatePayout(
            pb.CreatePayoutRequest(amount=100, currency="usd", statement_descriptor=descriptor),
            metadata=((ACCOUNT_KEY, account_id),),
        )
    assert reply.payout.statement_descriptor == descriptor


async def test_a_payout_stored_with_a_descriptor_before_the_rules_is_read_as_it_is(
    core_engine: AsyncEngine, account_id: str, clock: FixedClock
) -> None:
    service = LedgerService(core_engine, clock)
    await fund(core_engine, account_id, clock, 1_000)
    payout = await service.create_payout(
        account_id, amount=100, currency="usd", statement_descriptor="JUNE"
    )
    async with core_engine.begin() as db:
        await db.execute(
            update(payouts)
            .where(payouts.c.id == payout.id)
            .values(statement_descriptor="<JUNE*PAYOUT>")
        )
    async with ledger_stub(service) as stub:
        reply = await stub.GetPayout(
            pb.GetPayoutRequest(id=payout.id), metadata=((ACCOUNT_KEY, account_id),)
        )
        listed = await stub.ListPayouts(
            pb.ListPayoutsRequest(limit=10), metadata=((ACCOUNT_KEY, account_id),)
        )
    assert reply.payout.statement_descriptor == "<JUNE*PAYOUT>"
    assert [p.statement_descriptor for p in listed.data] == ["<JUNE*PAYOUT>"]
