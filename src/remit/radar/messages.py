"""Radar's objects as protobuf messages (the resource shapes the facade and events render)."""

from remit.grpcutil.protoconv import timestamp
from remit.radar.challenges import ChallengeStatus, ThreeDSChallenge
from remit.radar.domain import ItemType, Rule, RuleAction, ValueList, ValueListItem
from remit.radar.history import Change
from remit.radar.reviews import Review
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as ppb
from remit_api.radar.v1 import radar_pb2 as rpb

RULE_ACTIONS = {action: rpb.RuleAction.Value(f"RULE_ACTION_{action.name}") for action in RuleAction}
RULE_ACTIONS_FROM_PROTO = {number: action for action, number in RULE_ACTIONS.items()}
ITEM_TYPES = {
    item_type: rpb.ValueListItemType.Value(f"VALUE_LIST_ITEM_TYPE_{item_type.name}")
    for item_type in ItemType
}
ITEM_TYPES_FROM_PROTO = {number: item_type for item_type, number in ITEM_TYPES.items()}
_CHALLENGE_STATUS = {
    status: ppb.ThreeDSecureChallengeStatus.Value(f"THREE_D_SECURE_CHALLENGE_STATUS_{status.name}")
    for status in ChallengeStatus
}
_BRAND = {
    name.removeprefix("CARD_BRAND_").lower(): number
    for name, number in common_pb2.CardBrand.items()
}


def rule_message(rule: Rule) -> rpb.Rule:
    message = rpb.Rule(
        id=rule.id,
        action=RULE_ACTIONS[rule.action],
        predicate=rule.predicate,
        position=rule.position,
        created=timestamp(rule.created_at),
        livemode=False,
    )
    if rule.invalid_reason is not None:
        message.invalid_reason = rule.invalid_reason
    if rule.version is not None:
        message.version = rule.version
    return message


def change_message(change: Change) -> rpb.RadarChange:
    message = rpb.RadarChange(
        id=change.id,
        created=timestamp(change.created_at),
        object_type=change.object_type,
        object_id=change.object_id,
        action=change.action.value,
        changed_by=change.changed_by,
    )
    if change.rule_version is not None:
        message.rule_version = change.rule_version
    before, after = change.json_of(change.before), change.json_of(change.after)
    if before is not None:
        message.before = before
    if after is not None:
        message.after = after
    if change.request_id is not None:
        message.request_id = change.request_id
    if change.value_list_id is not None:
        message.value_list = change.value_list_id
    return message


def item_message(item: ValueListItem) -> rpb.ValueListItem:
    return rpb.ValueListItem(
        id=item.id,
        created=timestamp(item.created_at),
        created_by=item.created_by,
        livemode=False,
        value=item.value,
        value_list=item.value_list_id,
    )


def value_list_message(
    value_list: ValueList, items: list[ValueListItem], has_more: bool
) -> rpb.ValueList:
    return rpb.ValueList(
        id=value_list.id,
        alias=value_list.alias,
        created=timestamp(value_list.created_at),
        created_by=value_list.created_by,
        item_type=ITEM_TYPES[value_list.item_type],
        list_items=rpb.ValueListItemList(
            data=[item_message(item) for item in items],
            has_more=has_more,
            url=f"/v1/radar/value_list_items?value_list={value_list.id}",
        ),
        livemode=False,
        metadata=dict(value_list.metadata),
        name=value_list.name,
    )


def review_message(review: Review) -> ppb.Review:
    message = ppb.Review(
        id=review.id,
        charge=review.charge_id,
        created=timestamp(review.created_at),
        livemode=False,
        open=review.open,
        opened_reason=ppb.ReviewOpenedReason.Value(
            f"REVIEW_OPENED_REASON_{review.opened_reason.upper()}"
        ),
        payment_intent=review.payment_intent_id,
        reason=review.reason,
    )
    if review.closed_reason is not None:
        message.closed_reason = ppb.ReviewClosedReason.Value(
            f"REVIEW_CLOSED_REASON_{review.closed_reason.name}"
        )
    if review.ip_address is not None:
        message.ip_address = review.ip_address
    if review.ip_country is not None:
        message.ip_address_location.country = review.ip_country
    return message


def challenge_message(challenge: ThreeDSChallenge) -> ppb.ThreeDSecureChallenge:
    message = ppb.ThreeDSecureChallenge(
        id=challenge.id,
        payment_intent=challenge.payment_intent_id,
        amount=challenge.amount_minor,
        currency=challenge.currency,
        brand=_BRAND.get(challenge.brand, common_pb2.CARD_BRAND_UNSPECIFIED),
        last4=challenge.last4,
        status=_CHALLENGE_STATUS[challenge.status],
        created=timestamp(challenge.created_at),
        expires_at=timestamp(challenge.expires_at),
        livemode=False,
    )
    if challenge.return_url is not None:
        message.return_url = challenge.return_url
    if challenge.completed_at is not None:
        message.completed_at.CopyFrom(timestamp(challenge.completed_at))
    return message
