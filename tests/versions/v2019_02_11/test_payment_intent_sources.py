from typing import Any

import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.rest.forms import FormValue
from remit.versioning import (
    RequestRefusedError,
    render,
    render_error,
    render_event,
    upgrade_request,
)
from remit.versioning.openapi import document
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
_PAGE = "https://remit.test/3ds/abc"
"""The 3-D Secure page of `resources.payment_intent(with_next_action=True)`."""
_SDK_PAGE = "https://remit.test/three_d_secure/acct_1/tdsc_abc"
"""The same, `for_the_sdk`."""


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
    ("for_the_sdk", "kind", "authorization"),
    [
        (False, "redirect_to_url", {"url": _PAGE, "return_url": "https://shop.test/done"}),
        (True, "use_stripe_sdk", {"url": _SDK_PAGE, "return_url": None}),
    ],
)
def test_next_action_is_next_source_action_authorizing_with_url_before_2019_02_11(
    for_the_sdk: bool, kind: str, authorization: JsonObject
) -> None:
    """The action is `authorize_with_url` whichever it is: `use_stripe_sdk` came later, and
    shows the same page without a return_url."""
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
    old_action = {"type": "authorize_with_url", "authorize_with_url": authorization}
    assert top_level_difference(before, at) == {
        "next_source_action": (old_action, "<absent>"),
        "next_action": ("<absent>", action),
    }


def test_next_source_action_authorizes_with_url_before_2019_02_11() -> None:
    intent = to_json(
        resources.payment_intent(
            status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION,
            with_next_action=True,
            latest_charge=None,
        )
    )
    old = render(intent, "2018-11-08")
    assert old["status"] == "requires_source_action"
    action = old["next_source_action"]
    assert isinstance(action, dict)
    assert action["type"] == "authorize_with_url"
    assert isinstance(action["authorize_with_url"], dict)
    assert action["authorize_with_url"]["url"] == _PAGE
    assert "redirect_to_url" not in action
    assert "use_stripe_sdk" not in action


def test_no_next_action_is_a_null_next_source_action_before_2019_02_11() -> None:
    intent = to_json(resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_SUCCEEDED))
    assert intent["next_action"] is None
    assert render(intent, BEFORE, RELATED)["next_source_action"] is None


def test_the_intent_of_an_error_authorizes_with_url_before_2019_02_11() -> None:
    intent = to_json(
        resources.payment_intent(
            status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION,
            with_next_action=True,
            latest_charge=None,
        )
    )
    body: JsonObject = {
        "error": {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": "This PaymentIntent requires an action.",
            "payment_intent": intent,
        }
    }
    old = render_error(400, body, BEFORE).error["payment_intent"]
    assert isinstance(old, dict)
    assert old["next_source_action"] == {
        "type": "authorize_with_url",
        "authorize_with_url": {"url": _PAGE, "return_url": "https://shop.test/done"},
    }
    assert "next_action" not in old


def test_an_events_next_source_action_authorizes_with_url_before_2019_02_11() -> None:
    """In the object and in what it was before the event: the action the intent no longer has
    shows in the old shape too."""
    waiting = to_json(
        resources.payment_intent(
            status=pb.PAYMENT_INTENT_STATUS_REQUIRES_ACTION,
            with_next_action=True,
            latest_charge=None,
        )
    )
    paid = to_json(resources.payment_intent(status=pb.PAYMENT_INTENT_STATUS_PROCESSING))
    paid["latest_charge"] = None
    previous = {"status": waiting["status"], "next_action": waiting["next_action"]}
    event = to_json(resources.event(paid, previous_attributes=previous))
    data = render_event(event, BEFORE)["data"]
    assert isinstance(data, dict)
    assert isinstance(data["object"], dict)
    assert data["object"]["next_source_action"] is None
    assert data["previous_attributes"] == {
        "status": "requires_source_action",
        "next_source_action": {
            "type": "authorize_with_url",
            "authorize_with_url": {"url": _PAGE, "return_url": "https://shop.test/done"},
        },
    }


def test_the_document_before_2019_02_11_allows_authorize_with_url_alone() -> None:
    doc: Any = document(BEFORE)
    properties = doc["components"]["schemas"]["payment_intent"]["properties"]
    action = properties["next_source_action"]["anyOf"][0]
    assert action["properties"]["type"]["enum"] == ["authorize_with_url"]
    assert set(action["properties"]) == {"type", "authorize_with_url"}
    assert action["additionalProperties"] is False
    assert "next_action" not in properties


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
