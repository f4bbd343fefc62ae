"""`/v1/radar/...`: Stripe's value lists and value list items, and remit's rules.

Stripe manages Radar rules in its dashboard only; remit exposes them as `/v1/radar/rules`
(`action` and `predicate`, or the whole rule as `rule="Block if :risk_score: > 85"`).
"""

from remit.core.errors import ErrorKind, RemitError
from remit.core.jsonview import JsonObject, enum_numbers, to_json
from remit.radar.rules import RuleSyntaxError, parse_rule
from remit.rest.context import ApiContext
from remit.rest.dependencies import Dependencies
from remit.rest.errors import StripeError
from remit.rest.expand import GoneError, register_resource
from remit.rest.grpc_call import call
from remit.rest.listing import list_envelope, page_fields
from remit.rest.params import (
    Enum,
    Integer,
    Metadata,
    PageRequest,
    Schema,
    String,
    list_schema,
)
from remit_api.radar.v1 import radar_pb2 as pb

RULES = "/v1/radar/rules"
LISTS = "/v1/radar/value_lists"
ITEMS = "/v1/radar/value_list_items"
MAX_RULES_POSITION = 1000

_ACTIONS = enum_numbers(pb.RuleAction.DESCRIPTOR)
_ITEM_TYPES = enum_numbers(pb.ValueListItemType.DESCRIPTOR)
_POSITION = Integer(min=0, max=MAX_RULES_POSITION)

RULE_CREATE = Schema(
    {
        "action": Enum(*_ACTIONS),
        "predicate": String(max_length=1000),
        "rule": String(max_length=1100),
        "position": _POSITION,
    }
)
RULE_UPDATE = Schema(
    {
        "action": Enum(*_ACTIONS),
        "predicate": String(max_length=1000),
        "position": _POSITION,
    }
)
RETRIEVE = Schema({})
DELETE = Schema({})
RULE_LIST = list_schema(created=False)
LIST_CREATE = Schema(
    {
        "alias": String(max_length=100),
        "name": String(max_length=100),
        "item_type": Enum(*_ITEM_TYPES),
        "metadata": Metadata(),
    },
    required={"alias", "name"},
)
LIST_LIST = list_schema({"alias": String(max_length=100), "contains": String(max_length=800)})
ITEM_CREATE = Schema(
    {"value_list": String(), "value": String(max_length=800)},
    required={"value_list", "value"},
)
ITEM_LIST = list_schema(
    {"value_list": String(), "value": String(max_length=800)}, required={"value_list"}
)


# --- rules ------------------------------------------------------------------------------


def _rule_parts(context: ApiContext) -> tuple[str, str]:
    whole = context.optional_str("rule")
    action, predicate = context.optional_str("action"), context.optional_str("predicate")
    if whole is not None:
        if action is not None or predicate is not None:
            raise StripeError.invalid_request(
                "Pass either rule, or action and predicate, not both.", param="rule"
            )
        try:
            parsed = parse_rule(whole)
        except RuleSyntaxError as error:
            raise StripeError.invalid_request(
                f"Invalid rule: {error}", code="rule_invalid", param="rule"
            ) from None
        return parsed.action, parsed.predicate.text
    if action is None or predicate is None:
        raise StripeError.invalid_request(
            "Missing required param: action and predicate (or rule).",
            code="parameter_missing",
            param="predicate" if action is not None else "action",
        )
    return action, predicate


async def create_rule(context: ApiContext, deps: Dependencies) -> JsonObject:
    action, predicate = _rule_parts(context)
    request = pb.CreateRuleRequest(action=_ACTIONS[action], predicate=predicate)  # type: ignore[arg-type]
    position = context.optional_int("position")
    if position is not None:
        request.position = position
    reply = await call(deps.radar.CreateRule, request, context)
    return to_json(reply.rule)


async def retrieve_rule(context: ApiContext, deps: Dependencies) -> JsonObject:
    return await fetch_rule(context, deps, context.path["rule"])


async def fetch_rule(context: ApiContext, deps: object, rule_id: str) -> JsonObject:
    assert isinstance(deps, Dependencies)
    reply = await call(deps.radar.GetRule, pb.GetRuleRequest(id=rule_id), context)
    return to_json(reply.rule)


async def expanded_rule(context: ApiContext, deps: object, rule_id: str) -> JsonObject:
    """A rule id expanded outside a charge (nowhere yet): the rule as it is now."""
    return await _expanded(context, deps, pb.GetRuleRequest(id=rule_id))


async def expanded_rule_within(
    context: ApiContext, deps: object, rule_id: str, within: JsonObject
) -> JsonObject:
    """A charge's `outcome.rule` expanded, as Stripe expands it: the rule as it was when it
    decided the charge (its predicate then, though changed since: remit.radar.decided)."""
    request = pb.GetRuleRequest(id=rule_id)
    charge_id = within.get("id")
    if within.get("object") == "charge" and isinstance(charge_id, str):
        request.decided_charge = charge_id
    return await _expanded(context, deps, request)


async def _expanded(context: ApiContext, deps: object, request: pb.GetRuleRequest) -> JsonObject:
    """Rules are deleted for good, and a charge a deleted rule decided keeps naming it: that id
    stays as it is."""
    assert isinstance(deps, Dependencies)
    try:
        reply = await call(deps.radar.GetRule, request, context)
    except RemitError as error:
        if error.kind is ErrorKind.NOT_FOUND:
            raise GoneError(request.id) from None
        raise
    return to_json(reply.rule)


register_resource(
    pb.Rule.DESCRIPTOR, expanded_rule, id_prefix="rule", fetch_within=expanded_rule_within
)


async def update_rule(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.UpdateRuleRequest(id=context.path["rule"])
    action = context.optional_str("action")
    if action is not None:
        request.action = _ACTIONS[action]  # type: ignore[assignment]
    predicate = context.optional_str("predicate")
    if predicate is not None:
        request.predicate = predicate
    position = context.optional_int("position")
    if position is not None:
        request.position = position
    reply = await call(deps.radar.UpdateRule, request, context)
    return to_json(reply.rule)


async def delete_rule(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.DeleteRuleRequest(id=context.path["rule"])
    reply = await call(deps.radar.DeleteRule, request, context)
    return to_json(reply.deleted_rule)


async def list_rules(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListRulesRequest(limit=page.limit)
    if page.starting_after is not None:
        request.starting_after = page.starting_after
    if page.ending_before is not None:
        request.ending_before = page.ending_before
    reply = await call(deps.radar.ListRules, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=RULES)


# --- value lists ------------------------------------------------------------------------


async def create_list(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.CreateValueListRequest(
        alias=context.str_param("alias"),
        name=context.str_param("name"),
        metadata=context.new_metadata(),
    )
    item_type = context.optional_str("item_type")
    if item_type is not None:
        request.item_type = _ITEM_TYPES[item_type]  # type: ignore[assignment]
    reply = await call(deps.radar.CreateValueList, request, context)
    return to_json(reply.value_list)


async def retrieve_list(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.GetValueListRequest(id=context.path["value_list"])
    reply = await call(deps.radar.GetValueList, request, context)
    return to_json(reply.value_list)


async def delete_list(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.DeleteValueListRequest(id=context.path["value_list"])
    reply = await call(deps.radar.DeleteValueList, request, context)
    return to_json(reply.deleted_value_list)


async def list_lists(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListValueListsRequest(**page_fields(page))  # type: ignore[arg-type]
    for name in ("alias", "contains"):
        value = context.optional_str(name)
        if value is not None:
            setattr(request, name, value)
    reply = await call(deps.radar.ListValueLists, request, context)
    return list_envelope(reply.data, has_more=reply.has_more, url=LISTS)


# --- value list items -------------------------------------------------------------------


async def create_item(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.AddValueListItemRequest(
        value_list=context.str_param("value_list"), value=context.str_param("value")
    )
    reply = await call(deps.radar.AddValueListItem, request, context)
    return to_json(reply.value_list_item)


async def delete_item(context: ApiContext, deps: Dependencies) -> JsonObject:
    request = pb.RemoveValueListItemRequest(id=context.path["item"])
    reply = await call(deps.radar.RemoveValueListItem, request, context)
    return to_json(reply.deleted_value_list_item)


async def list_items(context: ApiContext, deps: Dependencies) -> JsonObject:
    page = PageRequest.from_params(context.params)
    request = pb.ListValueListItemsRequest(
        **page_fields(page),  # type: ignore[arg-type]
        value_list=context.str_param("value_list"),
    )
    value = context.optional_str("value")
    if value is not None:
        request.value = value
    reply = await call(deps.radar.ListValueListItems, request, context)
    return list_envelope(
        reply.data,
        has_more=reply.has_more,
        url=f"{ITEMS}?value_list={request.value_list}",
    )
