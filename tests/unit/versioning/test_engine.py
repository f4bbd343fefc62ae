"""The engine's walk: which objects it rewrites and where it looks for them."""

from collections import Counter

import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.rest.errors import StripeError
from remit.versioning import VersionChange, plan, render, render_error, render_event
from remit.versioning.change import RenderContext
from remit_api.payments.v1 import payments_pb2 as pb
from tests.support import resources
from tests.support.versions import error_body
from versions import KNOWN_VERSIONS, LATEST_VERSION
from versions.v2022_11_15 import RemovePaymentIntentCharges, StopAutoexpandingChargeRefunds

OLD = "2018-11-08"
RELATED = resources.related_lists()
_PAGE = "https://remit.test/three_d_secure/acct_1/tdsc_abc"
ACTION: JsonObject = {
    "type": "use_stripe_sdk",
    "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": _PAGE, "source": "tdsc_abc"},
}
OLD_ACTION: JsonObject = {
    "type": "authorize_with_url",
    "authorize_with_url": {"url": _PAGE, "return_url": None},
}
"""ACTION before 2019-02-11, when every next action authorized with a url."""


def _waiting_intent() -> JsonObject:
    return to_json(
        resources.payment_intent(
            status=pb.PAYMENT_INTENT_STATUS_REQUIRES_PAYMENT_METHOD, latest_charge=None
        )
    )


def test_only_the_changes_touching_a_resource_apply_to_it() -> None:
    changes = plan(OLD).response_changes
    assert {type(c).__name__ for c in changes["charge"]} == {
        "RemoveInvoiceFromPaymentIntentsAndCharges",
        "RenderReleasedAmountsAsRefunded",
        "StopAutoexpandingChargeRefunds",
        "ReplaceThreeDSecureBooleansWithResult",
    }
    assert "refund" not in changes
    refund = to_json(resources.refund())
    assert render(refund, OLD) == refund


def test_changes_apply_newest_first() -> None:
    names = [type(c).__name__ for c in plan("2011-01-01").response_changes["charge"]]
    assert names == [
        "RemoveInvoiceFromPaymentIntentsAndCharges",
        "RenderReleasedAmountsAsRefunded",
        "StopAutoexpandingChargeRefunds",
        "ReplaceThreeDSecureBooleansWithResult",
        "StopAutoexpandingChargeOutcomeRule",
        "RenameSucceededChargeStatus",
        "ReplaceChargeCardWithSource",
        "TurnChargeRefundsIntoAList",
    ]


def test_list_envelopes_render_each_item() -> None:
    listing: JsonObject = {
        "object": "list",
        "data": [_waiting_intent(), _waiting_intent()],
        "has_more": True,
        "url": "/v1/payment_intents",
    }
    rendered = render(listing, OLD)
    data = rendered["data"]
    assert isinstance(data, list)
    assert [item["status"] for item in data if isinstance(item, dict)] == ["requires_source"] * 2
    assert {k: rendered[k] for k in ("object", "has_more", "url")} == {
        "object": "list",
        "has_more": True,
        "url": "/v1/payment_intents",
    }


def test_an_expanded_object_renders_at_the_same_version_as_its_parent() -> None:
    intent = to_json(resources.payment_intent())
    intent["latest_charge"] = to_json(resources.charge())
    rendered = render(intent, "2015-01-26", RELATED)
    charge = rendered["latest_charge"]
    assert isinstance(charge, dict)
    assert (charge["status"], charge["invoice"]) == ("paid", None)


def test_rendering_does_not_modify_its_input() -> None:
    intent = to_json(resources.payment_intent())
    intent["latest_charge"] = to_json(resources.charge())
    snapshot = repr(intent)
    render(intent, "2011-01-01", RELATED)
    assert repr(intent) == snapshot


def test_an_event_renders_its_object_and_previous_attributes_as_that_type() -> None:
    event = to_json(
        resources.event(
            _waiting_intent(),
            previous_attributes={"status": "requires_action", "next_action": ACTION},
            event_type="payment_intent.updated",
        )
    )
    rendered = render_event(event, OLD)
    data = rendered["data"]
    assert isinstance(data, dict)
    obj, previous = data["object"], data["previous_attributes"]
    assert isinstance(obj, dict)
    assert isinstance(previous, dict)
    assert obj["status"] == "requires_source"
    assert previous == {"status": "requires_source_action", "next_source_action": OLD_ACTION}
    assert rendered["api_version"] == OLD


def test_render_event_at_the_latest_version_only_sets_the_api_version() -> None:
    event = to_json(resources.event(_waiting_intent()))
    assert render_event(event, LATEST_VERSION) == {**event, "api_version": LATEST_VERSION}


def test_an_error_embedding_a_payment_intent_renders_the_intent_at_the_version() -> None:
    error = StripeError(
        402,
        "card_error",
        "Your card was declined.",
        code="card_declined",
        decline_code="generic_decline",
        payment_intent=_waiting_intent(),
    )
    rendered = render_error(402, error_body(error), OLD)
    embedded = rendered.error["payment_intent"]
    assert rendered.http_status == 402
    assert isinstance(embedded, dict)
    assert embedded["status"] == "requires_source"
    assert rendered.error["decline_code"] == "generic_decline"


def test_versions_without_changes_newer_than_them_render_nothing() -> None:
    identity = [v for v in KNOWN_VERSIONS if plan(v).is_identity]
    assert identity == ["2026-10-28.endive", "2026-09-30.endive", "2026-08-26.dahlia",
                        "2026-07-29.dahlia", "2026-06-24.dahlia", "2026-05-27.dahlia",
                        "2026-04-22.dahlia", "2026-03-25.dahlia", "2026-02-25.clover",
                        "2026-01-28.clover", "2025-12-15.clover", "2025-11-17.clover",
                        "2025-10-29.clover", "2025-09-30.clover", "2025-08-27.basil",
                        "2025-07-30.basil", "2025-06-30.basil", "2025-05-28.basil",
                        "2025-04-30.basil", "2025-03-31.basil"]  # fmt: skip


def test_an_event_renders_what_its_object_before_and_after_share_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The object before an event is the object after it with a few fields changed: the
    objects they share (an intent's embedded charges, before 2022-11-15) are rendered once and
    serve both, and only the intent itself, whose changes derive fields from the ones that
    changed, is rendered twice."""
    rendered: Counter[str] = Counter()
    charge_change = StopAutoexpandingChargeRefunds.downgrade
    intent_change = RemovePaymentIntentCharges.downgrade

    def count_charge(self: VersionChange, obj: JsonObject, context: RenderContext) -> None:
        rendered[f"charge {obj.get('id')}"] += 1
        charge_change(self, obj, context)  # type: ignore[arg-type]

    def count_intent(self: VersionChange, obj: JsonObject, context: RenderContext) -> None:
        rendered[f"intent {obj.get('id')}"] += 1
        intent_change(self, obj, context)  # type: ignore[arg-type]

    monkeypatch.setattr(StopAutoexpandingChargeRefunds, "downgrade", count_charge)
    monkeypatch.setattr(RemovePaymentIntentCharges, "downgrade", count_intent)
    intent = to_json(resources.payment_intent())
    event = to_json(
        resources.event(
            intent,
            previous_attributes={"status": "processing", "metadata": {"order_id": None}},
            event_type="payment_intent.succeeded",
        )
    )

    delivered = render_event(event, "2022-08-01", RELATED)

    assert rendered == Counter({"intent pi_3Example": 2, "charge ch_3Example": 1})
    data = delivered["data"]
    assert isinstance(data, dict)
    assert data["previous_attributes"] == {"status": "processing", "metadata": {"order_id": None}}
    assert data["object"] == render(intent, "2022-08-01", RELATED)
