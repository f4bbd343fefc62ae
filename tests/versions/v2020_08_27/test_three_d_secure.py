import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import render, render_event
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2020_08_27 import ReplaceThreeDSecureBooleansWithResult

AT = "2020-08-27"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


def _three_d_secure(charge: JsonObject) -> JsonObject:
    details = charge["payment_method_details"]
    assert isinstance(details, dict)
    card = details["card"]
    assert isinstance(card, dict)
    secure = card["three_d_secure"]
    assert isinstance(secure, dict)
    return secure


@pytest.mark.parametrize(
    ("result", "authenticated", "succeeded"),
    [
        (pb.THREE_D_SECURE_RESULT_AUTHENTICATED, True, True),
        (pb.THREE_D_SECURE_RESULT_ATTEMPT_ACKNOWLEDGED, False, True),
        (pb.THREE_D_SECURE_RESULT_FAILED, False, False),
        (pb.THREE_D_SECURE_RESULT_PROCESSING_ERROR, False, False),
    ],
)
def test_three_d_secure_has_succeeded_and_authenticated_before_2020_08_27(
    result: int, authenticated: bool, succeeded: bool
) -> None:
    charge = to_json(resources.charge(three_d_secure_result=result))
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert ReplaceThreeDSecureBooleansWithResult.version == AT
    assert set(top_level_difference(before, at)) == {"payment_method_details"}
    assert top_level_difference(_three_d_secure(before), _three_d_secure(at)) == {
        "authenticated": (authenticated, "<absent>"),
        "succeeded": (succeeded, "<absent>"),
    }


def test_rendering_leaves_the_latest_schema_charge_untouched() -> None:
    charge = to_json(resources.charge(three_d_secure_result=pb.THREE_D_SECURE_RESULT_AUTHENTICATED))
    render(charge, BEFORE, RELATED)
    assert "succeeded" not in _three_d_secure(charge)


def test_a_charge_without_three_d_secure_is_the_same_before_2020_08_27() -> None:
    charge = to_json(resources.charge())
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    assert before["payment_method_details"] == at["payment_method_details"]


def test_charge_events_before_2020_08_27_carry_the_booleans() -> None:
    charge = to_json(resources.charge(three_d_secure_result=pb.THREE_D_SECURE_RESULT_FAILED))
    event = to_json(resources.event(charge, event_type="charge.failed"))
    data = render_event(event, BEFORE, RELATED)["data"]
    assert isinstance(data, dict)
    rendered = data["object"]
    assert isinstance(rendered, dict)
    secure = _three_d_secure(rendered)
    assert (secure["result"], secure["authenticated"], secure["succeeded"]) == (
        "failed",
        False,
        False,
    )
