import pytest

from remit.core.jsonview import JsonObject, to_json
from remit.versioning import (
    Need,
    RelatedDataMissingError,
    RelatedPage,
    gather_related,
    one_by_one,
    render,
    render_event,
)
from remit.versioning.registry import check_change
from tests.support import resources
from tests.support.versions import top_level_difference, version_before
from versions.v2017_02_14 import RULE_OF_CHARGE, StopAutoexpandingChargeOutcomeRule

AT = "2017-02-14"
BEFORE = version_before(AT)
RULE_ID = "rule_1Example"
CHARGE_ID = "ch_3Example"
RELATED = resources.related_lists()
GONE: dict[tuple[Need, str], RelatedPage] = {
    **RELATED,
    (RULE_OF_CHARGE, f"{CHARGE_ID} {RULE_ID}"): RelatedPage.whole([]),
}


def _ruled_charge() -> JsonObject:
    charge = to_json(resources.charge(rule=RULE_ID))
    charge.pop("refunds")  # the facade leaves the key out unless expanded
    return charge


def _outcome(charge: JsonObject) -> JsonObject:
    outcome = charge["outcome"]
    assert isinstance(outcome, dict)
    return outcome


def test_a_charge_shows_the_rule_that_decided_it_expanded_before_2017_02_14() -> None:
    assert StopAutoexpandingChargeOutcomeRule.version == AT
    assert BEFORE == "2017-01-27"
    charge = _ruled_charge()
    before, at = render(charge, BEFORE, RELATED), render(charge, AT, RELATED)
    rule = to_json(resources.rule())
    assert top_level_difference(before, at) == {
        "outcome": ({**_outcome(charge), "rule": rule}, _outcome(charge))
    }
    assert _outcome(at)["rule"] == RULE_ID
    assert _outcome(charge)["rule"] == RULE_ID  # the input is left as it was


def test_a_rule_deleted_since_stays_an_id() -> None:
    charge = _ruled_charge()
    assert _outcome(render(charge, BEFORE, GONE))["rule"] == RULE_ID


def test_a_rule_the_client_expanded_is_kept_and_needs_no_lookup() -> None:
    charge = _ruled_charge()
    expanded: JsonObject = {**to_json(resources.rule()), "predicate": ":amount_in_usd: > 0"}
    charge["outcome"] = {**_outcome(charge), "rule": expanded}
    assert _outcome(render(charge, BEFORE, RELATED))["rule"] == expanded


def test_a_charge_no_rule_decided_renders_as_it_is() -> None:
    charge = to_json(resources.charge())
    assert _outcome(render(charge, BEFORE, RELATED)) == _outcome(charge)


def test_rendering_without_the_rule_gathered_fails_loudly() -> None:
    with pytest.raises(RelatedDataMissingError, match=RULE_ID):
        render(
            _ruled_charge(), BEFORE, {k: v for k, v in RELATED.items() if k[0] != RULE_OF_CHARGE}
        )


def _as_decided(charge_id: str) -> JsonObject:
    """The example rule as it was when it decided `charge_id` (each charge its own text)."""
    return {**to_json(resources.rule()), "predicate": f":customer: = '{charge_id}'"}


async def _rule_as_decided(need: Need, key: str) -> RelatedPage:
    charge_id, rule_id = RULE_OF_CHARGE.ids_in(key)
    assert (need, rule_id) == (RULE_OF_CHARGE, RULE_ID)
    assert charge_id is not None
    return RelatedPage.whole([_as_decided(charge_id)])


@pytest.mark.anyio
async def test_gathering_finds_the_rule_of_each_charge_once_as_it_decided_it() -> None:
    """The same rule decided both charges, with another predicate each time: each shows the
    rule as it decided it, found once by the charge's id, listed or embedded."""
    asked: list[tuple[str, str]] = []

    async def fetch(need: Need, key: str) -> RelatedPage:
        asked.append((need.resource, key))
        if need is RULE_OF_CHARGE:
            return await _rule_as_decided(need, key)
        if need.resource == "charge":  # the intent's charges, each decided by the rule
            return RelatedPage.whole([_ruled_charge()])
        return RelatedPage.whole([])

    listed: JsonObject = {
        "object": "list",
        "data": [_ruled_charge(), to_json(resources.charge(id="ch_3Other", rule=RULE_ID))],
        "has_more": False,
        "url": "/v1/charges",
    }
    related = await gather_related(listed, BEFORE, one_by_one(fetch))
    assert sorted(key for resource, key in asked if resource == "rule") == [
        f"ch_3Example {RULE_ID}",
        f"ch_3Other {RULE_ID}",
    ]
    rendered = render(listed, BEFORE, related)
    data = rendered["data"]
    assert isinstance(data, list)
    for charge in data:
        assert isinstance(charge, dict)
        assert _outcome(charge)["rule"] == _as_decided(str(charge["id"]))

    # A PaymentIntent's embedded `charges` and its expanded `latest_charge`: one charge.
    asked.clear()
    intent = to_json(resources.payment_intent())
    intent["latest_charge"] = _ruled_charge()
    related = await gather_related(intent, BEFORE, one_by_one(fetch))
    assert asked.count(("rule", f"{CHARGE_ID} {RULE_ID}")) == 1
    rendered = render(intent, BEFORE, related)
    latest, charges = rendered["latest_charge"], rendered["charges"]
    assert isinstance(latest, dict)
    assert isinstance(charges, dict)
    assert isinstance(charges["data"], list)
    assert isinstance(charges["data"][0], dict)
    for charge in (latest, charges["data"][0]):
        assert _outcome(charge)["rule"] == _as_decided(CHARGE_ID)


@pytest.mark.anyio
async def test_nothing_is_looked_up_from_2017_02_14_until_2022_11_15() -> None:
    async def fetch(need: Need, key: str) -> RelatedPage:
        assert need is not RULE_OF_CHARGE, "no rule lookup expected"
        return RelatedPage.whole([])

    related = await gather_related(_ruled_charge(), AT, one_by_one(fetch))
    assert not any(need is RULE_OF_CHARGE for need, _ in related)


def test_an_event_shows_the_rule_in_its_object_and_leaves_previous_attributes_as_stored() -> None:
    charge = _ruled_charge()
    previous: JsonObject = {"outcome": {"rule": None}}
    event = to_json(
        resources.event(charge, previous_attributes=previous, event_type="charge.updated")
    )
    rendered = render_event(event, BEFORE, RELATED)
    data = rendered["data"]
    assert isinstance(data, dict)
    assert isinstance(data["object"], dict)
    assert _outcome(data["object"])["rule"] == to_json(resources.rule())
    assert data["previous_attributes"] == previous


@pytest.mark.anyio
async def test_an_event_whose_charge_had_another_rule_shows_that_one_in_previous_attributes() -> (
    None
):
    """The rule before is another object than the rule after: shown whole, not by the keys in
    which the two rules differ; before 2015-01-26 in the whole outcome."""
    charge = _ruled_charge()
    earlier = to_json(resources.rule(id="rule_0Earlier"))
    previous: JsonObject = {"outcome": {"rule": earlier["id"]}}
    event = to_json(
        resources.event(charge, previous_attributes=previous, event_type="charge.updated")
    )
    rules = {RULE_ID: to_json(resources.rule()), "rule_0Earlier": earlier}

    async def fetch(need: Need, key: str) -> RelatedPage:
        if need is RULE_OF_CHARGE:
            return RelatedPage.whole([rules[need.ids_in(key)[1]]])
        return RelatedPage.whole([])

    related = await gather_related(event, BEFORE, one_by_one(fetch))
    data = render_event(event, BEFORE, related)["data"]
    assert isinstance(data, dict)
    assert data["previous_attributes"] == {"outcome": {"rule": earlier}}

    before_hash_diffs = version_before("2015-01-26")
    related = await gather_related(event, before_hash_diffs, one_by_one(fetch))
    data = render_event(event, before_hash_diffs, related)["data"]
    assert isinstance(data, dict)
    assert data["previous_attributes"] == {"outcome": {**_outcome(charge), "rule": earlier}}


def test_the_change_names_a_field_the_charge_has() -> None:
    check_change(StopAutoexpandingChargeOutcomeRule)
    assert RULE_OF_CHARGE.id_in(_ruled_charge()) == RULE_ID
    assert RULE_OF_CHARGE.id_in(to_json(resources.charge())) is None
