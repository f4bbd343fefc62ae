"""The facade asks again for the lists an answer of the core left out (to keep within its
size), until every parent has its list; a core that answers none of them fails the request
rather than being asked forever. The gRPC side is faked."""

from dataclasses import dataclass, field
from typing import Any

from starlette.testclient import TestClient

from remit.rest.app import build_app
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.rest_facade import every_key_is_a_secret_key, faked_dependencies

KEY = "sk_test_" + "a" * 24
CHARGES = ["ch_a", "ch_b", "ch_c"]


@dataclass
class FakePayments:
    """A page of three charges whose answer holds the refunds of the first only; each
    ListRefundsOfCharges answers the first charge asked (unless `answers_none`)."""

    answers_none: bool = False
    asked: list[list[str]] = field(default_factory=list)

    async def ListCharges(  # noqa: N802 (the gRPC method name)
        self, request: pb.ListChargesRequest, **_: object
    ) -> pb.ListChargesResponse:
        assert not request.without_refunds
        listed = [resources.charge(id=charge_id) for charge_id in CHARGES]
        for charge in listed:  # as the core names each charge's list, empty or not
            charge.refunds.url = f"/v1/charges/{charge.id}/refunds"
        listed[0].refunds.data.append(resources.refund(id="re_a", charge="ch_a"))
        return pb.ListChargesResponse(data=listed, refunds_left_out=CHARGES[1:])

    async def ListRefundsOfCharges(  # noqa: N802
        self, request: pb.ListRefundsOfChargesRequest, **_: object
    ) -> pb.ListRefundsOfChargesResponse:
        asking = list(request.charges)
        self.asked.append(asking)
        if self.answers_none:
            return pb.ListRefundsOfChargesResponse(left_out=asking)
        first = asking[0]
        page = pb.RefundsOfCharge(
            charge=first,
            data=[resources.refund(id=f"re_{first[3:]}", charge=first)],
            has_more=True,
            total_count=150,
        )
        return pb.ListRefundsOfChargesResponse(pages=[page], left_out=asking[1:])


def _list_charges(payments: FakePayments) -> Any:
    client = TestClient(build_app(faked_dependencies(every_key_is_a_secret_key, payments=payments)))
    return client.get("/v1/charges", params={"expand[]": "data.refunds"}, auth=(KEY, ""))


def test_the_refunds_an_answer_left_out_are_asked_for_until_every_charge_has_them() -> None:
    payments = FakePayments()
    response = _list_charges(payments)
    assert response.status_code == 200, response.text
    assert payments.asked == [["ch_b", "ch_c"], ["ch_c"]]
    assert [
        (
            charge["id"],
            [r["id"] for r in charge["refunds"]["data"]],
            charge["refunds"]["has_more"],
            charge["refunds"]["url"],
        )
        for charge in response.json()["data"]
    ] == [
        ("ch_a", ["re_a"], False, "/v1/charges/ch_a/refunds"),
        ("ch_b", ["re_b"], True, "/v1/charges/ch_b/refunds"),
        ("ch_c", ["re_c"], True, "/v1/charges/ch_c/refunds"),
    ]


def test_a_core_that_answers_none_of_the_charges_asked_is_not_asked_forever() -> None:
    payments = FakePayments(answers_none=True)
    response = _list_charges(payments)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert payments.asked == [["ch_b", "ch_c"]]
