"""Over gRPC a charge comes with its first refunds unless the request says `without_refunds`
(what the REST facade says when the client did not expand `refunds`), so that internal callers
reading a charge see its refunds as they always have."""

import pytest

from remit_api.payments.v1 import payments_pb2 as pb
from tests.integration.payments.test_payment_method_data import (
    Core,
    _card_data,
    _create,
    _created,
    core,
)

__all__ = ["core"]  # the fixture, shared with the module it comes from

pytestmark = pytest.mark.anyio


async def test_a_charge_read_shows_its_refunds_unless_told_not_to(core: Core) -> None:
    intent, _ = await _created(core, _create(_card_data(pb.CardInput(token="tok_visa"))))
    charge_id = intent.latest_charge
    refund = await core.stub.CreateRefund(
        pb.CreateRefundRequest(charge=charge_id, amount=500), metadata=core.metadata()
    )
    assert refund.refund.charge == charge_id

    default = await core.stub.GetCharge(pb.GetChargeRequest(id=charge_id), metadata=core.metadata())
    assert [r.id for r in default.charge.refunds.data] == [refund.refund.id]

    without = await core.stub.GetCharge(
        pb.GetChargeRequest(id=charge_id, without_refunds=True), metadata=core.metadata()
    )
    assert list(without.charge.refunds.data) == []

    listed = await core.stub.ListCharges(pb.ListChargesRequest(limit=10), metadata=core.metadata())
    assert [[r.id for r in c.refunds.data] for c in listed.data] == [[refund.refund.id]]
    listed_without = await core.stub.ListCharges(
        pb.ListChargesRequest(limit=10, without_refunds=True), metadata=core.metadata()
    )
    assert [list(c.refunds.data) for c in listed_without.data] == [[]]
