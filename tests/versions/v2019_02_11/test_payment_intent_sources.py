import pytest

from remit.core.jsonview import to_json
from remit.rest.forms import FormValue
from remit.versioning import RequestRefusedError, render, upgrade_request
from remit.versioning.operations import (
    CONFIRM_PAYMENT_INTENT,
    CREATE_PAYMENT_INTENT,
    UPDATE_PAYMENT_INTENT,
)
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2019_02_11 import (
    RenameAllowedSourceTypes,
    RenameNextSourceAction,
    RenamePaymentIntentSourceStatuses,
)

AT = "2019-02-11"
BEFORE = version_before(AT)
RELATED = resources.related_lists()


@pytest.mark.parametrize(
    ("status", "old", "new"),
    [
        (
            pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD,
            "requires_source",
            "requires_payment_method",
        ),
        (pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION, "requires_source_action", "requires_action"),
    ],
)
def test_renamed_statuses_show_their_source_names_before_2019_02_11(
    status: int, old: str, new: str
) -> None:
    intent = to_json(resources.payment_intent(status=status, latest_charge=None))
    intent.pop("next_action")  # isolate the status from RenameNextSourceAction
    intent.pop("payment_method_types")  # and from RenameAllowedSourceTypes
    before, at = render(intent, BEFORE, RELATED), render(intent, AT, RELATED)
    assert RenamePaymentIntentSourceStatuses.version == AT
    assert top_level_difference(before, at) == {"status": (old, new)}


def test_other_statuses_are_the_same_before_2019_02_11() -> None:
    intent = to_json(resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_REQUIRES_CAPTURE))
    assert render(intent, BEFORE, RELATED)["status"] == "requires_capture"


def test_payment_method_types_is_allowed_source_types_before_2019_02_11() -> None:
    intent = to_json(resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_SUCCEEDED))
    intent.pop("next_action")
    before, at = render(intent, BEFORE, RELATED), render(intent, AT, RELATED)
    assert RenameAllowedSourceTypes.version == AT
    assert top_level_difference(before, at) == {
        "allowed_source_types": (["card"], "<absent>"),
        "payment_method_types": ("<absent>", ["card"]),
    }


@pytest.mark.parametrize(
    ("for_the_sdk", "kind"), [(False, "redirect_to_url"), (True, "use_stripe_sdk")]
)
def test_next_action_is_next_source_action_before_2019_02_11(for_the_sdk: bool, kind: str) -> None:
    """Renamed only: the action inside is the same, whichever it is."""
    intent = to_json(
        resources.payment_intent(
            status=pb.PAYMENT_INTENT_STATUS_PROCESSING,
            with_next_action=True,
            for_the_sdk=for_the_sdk,
        )
    )
    intent.pop("payment_method_types")
    before, at = render(intent, BEFORE, RELATED), render(intent, AT, RELATED)
    assert RenameNextSourceAction.version == AT
    action = at["next_action"]
    assert isinstance(action, dict)
    assert action["type"] == kind
    assert isinstance(action[kind], dict)
    assert top_level_difference(before, at) == {
        "next_source_action": (action, "<absent>"),
        "next_action": ("<absent>", action),
    }


_NAMING_TYPES = [CREATE_PAYMENT_INTENT, CONFIRM_PAYMENT_INTENT, UPDATE_PAYMENT_INTENT]


@pytest.mark.parametrize("operation", _NAMING_TYPES)
def test_an_allowed_source_types_parameter_before_2019_02_11_becomes_payment_method_types(
    operation: str,
) -> None:
    assert RenameAllowedSourceTypes.operations == tuple(_NAMING_TYPES)
    form: dict[str, FormValue] = {
        "payment_method": "pm_card_visa",
        "allowed_source_types": ["card"],
    }
    assert upgrade_request(operation, dict(form), BEFORE) == {
        "payment_method": "pm_card_visa",
        "payment_method_types": ["card"],
    }
    # From 2019-02-11 on the old name is left alone (and the schema refuses it as unknown).
    assert upgrade_request(operation, dict(form), AT)["allowed_source_types"] == ["card"]


@pytest.mark.parametrize("operation", _NAMING_TYPES)
def test_payment_method_types_is_an_unknown_parameter_before_2019_02_11(operation: str) -> None:
    with pytest.raises(RequestRefusedError) as refused:
        upgrade_request(operation, {"payment_method_types": ["card"]}, BEFORE)
    assert (refused.value.code, refused.value.param) == (
        "parameter_unknown",
        "payment_method_types",
    )


def test_a_confirmation_without_allowed_source_types_is_not_rewritten_before_2019_02_11() -> None:
    form = {"payment_method": "pm_card_visa"}
    assert upgrade_request(CONFIRM_PAYMENT_INTENT, dict(form), BEFORE) == form
