"""Radar over gRPC: RadarService (rules, value lists, dry runs), and the 3-D Secure and review
RPCs of PaymentsService. Protobuf in, use case, protobuf out."""

from typing import Any

import grpc

from remit.core.errors import invalid
from remit.core.jsonview import enum_wire_values
from remit.core.metadata import requested_metadata
from remit.core.return_urls import return_to
from remit.customers.service import CustomersService
from remit.grpcutil.metadata import CallContext, call_context
from remit.grpcutil.server import ServiceRegistration
from remit.payment_methods.service import PaymentMethodsService
from remit.payments.domain import PaymentIntent
from remit.payments.grpc import PaymentsServicer, created_bounds, payment_intent_message
from remit.payments.idempotency import KeyRecord
from remit.payments.keyed_rpc import client_keyed, reply, serialized
from remit.payments.service import PaymentsService
from remit.radar.authentication import ENDPOINT as COMPLETE_ENDPOINT
from remit.radar.authentication import ThreeDSecureService
from remit.radar.challenges import ThreeDSChallenge
from remit.radar.domain import ItemType, Rule, RuleAction, ValueList, ValueListItem
from remit.radar.history import Actor
from remit.radar.ip_addresses import canonical_ip
from remit.radar.messages import (
    ITEM_TYPES_FROM_PROTO,
    RULE_ACTIONS,
    RULE_ACTIONS_FROM_PROTO,
    challenge_message,
    change_message,
    item_message,
    review_message,
    rule_message,
    value_list_message,
)
from remit.radar.reviewing import ReviewsService
from remit.radar.reviews import ClosedReason, Review
from remit.radar.service import RadarService
from remit.radar.signals import amount_in_usd
from remit_api.common.v1 import common_pb2
from remit_api.payments.v1 import payments_pb2 as ppb
from remit_api.radar.v1 import radar_pb2 as rpb
from remit_api.radar.v1 import radar_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
_BRANDS = enum_wire_values(common_pb2.CardBrand.DESCRIPTOR)
_FUNDING = enum_wire_values(common_pb2.CardFunding.DESCRIPTOR)
_CHECKS = enum_wire_values(common_pb2.CardCheckResult.DESCRIPTOR)
_RISK = enum_wire_values(common_pb2.RiskLevel.DESCRIPTOR)
_RISK_LEVEL = {
    name.removeprefix("RISK_LEVEL_").lower(): number
    for name, number in common_pb2.RiskLevel.items()
}
CLOSE_REVIEW = "CloseReview"
_CLOSE_ACTIONS = {
    ppb.CLOSE_REVIEW_ACTION_REFUND: ClosedReason.REFUNDED,
    ppb.CLOSE_REVIEW_ACTION_REFUND_AS_FRAUD: ClosedReason.REFUNDED_AS_FRAUD,
    ppb.CLOSE_REVIEW_ACTION_CANCEL: ClosedReason.CANCELED,
}


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


def _actor(call: CallContext) -> Actor:
    """Who asks for a change, as Radar's history records it."""
    return Actor(key_id=call.key_id, request_id=call.request_id)


def _action(number: rpb.RuleAction.ValueType, param: str = "action") -> RuleAction:
    if number not in RULE_ACTIONS_FROM_PROTO:
        raise invalid("action must be allow, block, review or request_three_d_secure.", param)
    return RULE_ACTIONS_FROM_PROTO[number]


def signals_from_message(s: rpb.AttemptSignals) -> tuple[dict[str, object], str | None]:
    """EvaluateAttempt's signals in the names rules use, and the test-card risk hint."""
    if s.amount < 0:
        # No payment has a negative amount; the model's amount feature has no value for one.
        raise invalid(
            "signals.amount must be zero or more (in the currency's minor unit).",
            "signals.amount",
        )
    hint = _RISK.get(s.risk_level_hint)
    return {
        "amount": s.amount,
        "amount_in_usd": amount_in_usd(s.amount, s.currency.lower()),
        "currency": s.currency.lower() or None,
        "card_fingerprint": s.card_fingerprint or None,
        "card_brand": _BRANDS.get(s.card_brand),
        "card_funding": _FUNDING.get(s.card_funding),
        "card_country": s.card_country.upper() or None,
        "ip_address": canonical_ip(s.ip_address) if s.HasField("ip_address") else None,
        "ip_country": (_optional(s, "ip_country") or "").upper() or None,
        "email": _optional(s, "email"),
        "customer": _optional(s, "customer"),
        "cvc_check": _CHECKS.get(s.cvc_check),
        "address_zip_check": _CHECKS.get(s.address_postal_code_check),
        "is_3d_secure_authenticated": s.three_d_secure_authenticated,
        "is_off_session": s.is_off_session,
        "total_charges_per_card_number_hourly": s.card_attempts_hourly,
        "total_charges_per_card_number_daily": s.card_attempts_daily,
        "declined_charges_per_card_number_daily": s.card_declines_daily,
    }, hint if hint in ("elevated", "highest") else None


class RadarServicer(radar_pb2_grpc.RadarServiceServicer):
    def __init__(self, service: RadarService) -> None:
        self._service = service

    async def CreateRule(
        self, request: rpb.CreateRuleRequest, context: Context
    ) -> rpb.CreateRuleResponse:
        call = call_context(context)

        def answer(rule: Rule) -> rpb.CreateRuleResponse:
            return rpb.CreateRuleResponse(rule=rule_message(rule))

        result = await self._service.create_rule_once(
            call.account_id,
            client_keyed(context, "CreateRule", request, serialized(answer)),
            _action(request.action),
            request.predicate,
            _optional(request, "position"),
            actor=_actor(call),
        )
        return await reply(result, rpb.CreateRuleResponse, answer, context)

    async def GetRule(self, request: rpb.GetRuleRequest, context: Context) -> rpb.GetRuleResponse:
        call = call_context(context)
        rule = await self._service.get_rule(
            call.account_id, request.id, decided_charge=_optional(request, "decided_charge")
        )
        return rpb.GetRuleResponse(rule=rule_message(rule))

    async def GetRules(
        self, request: rpb.GetRulesRequest, context: Context
    ) -> rpb.GetRulesResponse:
        call = call_context(context)
        now, then = await self._service.get_rules(
            call.account_id,
            list(request.ids),
            [(asked.charge, asked.rule) for asked in request.decided],
        )
        return rpb.GetRulesResponse(
            rules=[rule_message(rule) for rule in now],
            decided=[
                rpb.DecidedRule(charge=charge_id, rule=rule_message(rule))
                for charge_id, rule in then
            ],
        )

    async def ListRules(
        self, request: rpb.ListRulesRequest, context: Context
    ) -> rpb.ListRulesResponse:
        call = call_context(context)
        rules, more = await self._service.list_rules(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
        )
        return rpb.ListRulesResponse(data=[rule_message(r) for r in rules], has_more=more)

    async def UpdateRule(
        self, request: rpb.UpdateRuleRequest, context: Context
    ) -> rpb.UpdateRuleResponse:
        call = call_context(context)

        def answer(rule: Rule) -> rpb.UpdateRuleResponse:
            return rpb.UpdateRuleResponse(rule=rule_message(rule))

        result = await self._service.update_rule_once(
            call.account_id,
            client_keyed(context, "UpdateRule", request, serialized(answer)),
            request.id,
            action=_action(request.action) if request.HasField("action") else None,
            predicate=_optional(request, "predicate"),
            position=_optional(request, "position"),
            actor=_actor(call),
        )
        return await reply(result, rpb.UpdateRuleResponse, answer, context)

    async def DeleteRule(
        self, request: rpb.DeleteRuleRequest, context: Context
    ) -> rpb.DeleteRuleResponse:
        call = call_context(context)
        await self._service.delete_rule(call.account_id, request.id, actor=_actor(call))
        return rpb.DeleteRuleResponse(deleted_rule=rpb.DeletedRule(id=request.id, deleted=True))

    async def CreateValueList(
        self, request: rpb.CreateValueListRequest, context: Context
    ) -> rpb.CreateValueListResponse:
        call = call_context(context)
        item_type = ItemType.STRING
        if request.HasField("item_type"):
            if request.item_type not in ITEM_TYPES_FROM_PROTO:
                raise invalid("Unknown item_type.", "item_type")
            item_type = ITEM_TYPES_FROM_PROTO[request.item_type]

        def answer(value_list: ValueList) -> rpb.CreateValueListResponse:
            return rpb.CreateValueListResponse(value_list=value_list_message(value_list, [], False))

        result = await self._service.create_value_list_once(
            call.account_id,
            client_keyed(context, "CreateValueList", request, serialized(answer)),
            alias=request.alias,
            name=request.name,
            item_type=item_type,
            metadata=requested_metadata(request.metadata),
            actor=_actor(call),
        )
        return await reply(result, rpb.CreateValueListResponse, answer, context)

    async def GetValueList(
        self, request: rpb.GetValueListRequest, context: Context
    ) -> rpb.GetValueListResponse:
        call = call_context(context)
        value_list, items, more = await self._service.get_value_list(call.account_id, request.id)
        return rpb.GetValueListResponse(value_list=value_list_message(value_list, items, more))

    async def ListValueLists(
        self, request: rpb.ListValueListsRequest, context: Context
    ) -> rpb.ListValueListsResponse:
        call = call_context(context)
        lists, more = await self._service.list_value_lists(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            alias=_optional(request, "alias"),
            contains=_optional(request, "contains"),
        )
        return rpb.ListValueListsResponse(
            data=[value_list_message(vl, items, m) for vl, items, m in lists], has_more=more
        )

    async def DeleteValueList(
        self, request: rpb.DeleteValueListRequest, context: Context
    ) -> rpb.DeleteValueListResponse:
        call = call_context(context)
        await self._service.delete_value_list(call.account_id, request.id, actor=_actor(call))
        return rpb.DeleteValueListResponse(
            deleted_value_list=rpb.DeletedValueList(id=request.id, deleted=True)
        )

    async def AddValueListItem(
        self, request: rpb.AddValueListItemRequest, context: Context
    ) -> rpb.AddValueListItemResponse:
        call = call_context(context)

        def answer(item: ValueListItem) -> rpb.AddValueListItemResponse:
            return rpb.AddValueListItemResponse(value_list_item=item_message(item))

        result = await self._service.add_item_once(
            call.account_id,
            client_keyed(context, "AddValueListItem", request, serialized(answer)),
            request.value_list,
            request.value,
            actor=_actor(call),
        )
        return await reply(result, rpb.AddValueListItemResponse, answer, context)

    async def RemoveValueListItem(
        self, request: rpb.RemoveValueListItemRequest, context: Context
    ) -> rpb.RemoveValueListItemResponse:
        call = call_context(context)
        await self._service.remove_item(call.account_id, request.id, actor=_actor(call))
        return rpb.RemoveValueListItemResponse(
            deleted_value_list_item=rpb.DeletedValueListItem(id=request.id, deleted=True)
        )

    async def ListValueListItems(
        self, request: rpb.ListValueListItemsRequest, context: Context
    ) -> rpb.ListValueListItemsResponse:
        call = call_context(context)
        if not request.value_list:
            raise invalid("value_list is required.", "value_list", code="parameter_missing")
        items, more = await self._service.list_items(
            call.account_id,
            request.value_list,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            value=_optional(request, "value"),
        )
        return rpb.ListValueListItemsResponse(data=[item_message(i) for i in items], has_more=more)

    async def EvaluateAttempt(
        self, request: rpb.EvaluateAttemptRequest, context: Context
    ) -> rpb.EvaluateAttemptResponse:
        call = call_context(context)
        signals, hint = signals_from_message(request.signals)
        decision = await self._service.evaluate(call.account_id, signals, hint)
        response = rpb.EvaluateAttemptResponse(
            risk_score=decision.score.risk_score,
            risk_level=_RISK_LEVEL[decision.score.risk_level.value],
            top_signals=[
                rpb.SignalContribution(signal=c.signal, contribution=c.points, value=c.value)
                for c in decision.score.top_signals
            ],
            action=RULE_ACTIONS[decision.action],
        )
        if decision.rule_id is not None:
            rule = await self._service.get_rule(call.account_id, decision.rule_id)
            response.matched_rule.CopyFrom(rule_message(rule))
        return response

    async def ListChanges(
        self, request: rpb.ListChangesRequest, context: Context
    ) -> rpb.ListChangesResponse:
        call = call_context(context)
        changes, more = await self._service.list_changes(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            object_id=_optional(request, "object"),
        )
        return rpb.ListChangesResponse(data=[change_message(c) for c in changes], has_more=more)


def redirect_url(intent: PaymentIntent) -> str:
    """Stripe's return: the return_url with the intent and its client secret appended."""
    if intent.return_url is None:
        return ""
    return return_to(intent.return_url, intent.id, intent.client_secret)


def completion_response(challenge: ThreeDSChallenge, intent: PaymentIntent) -> bytes:
    """The answer to a challenge's completion as its key stores it, whoever ended the challenge
    (the cardholder, or the sweep of expired ones): a press replays it."""
    return ppb.CompleteThreeDSecureChallengeResponse(
        challenge=challenge_message(challenge),
        payment_intent=payment_intent_message(intent),
        redirect_url=redirect_url(intent),
    ).SerializeToString()


class RadarPaymentsServicer(PaymentsServicer):
    """PaymentsService with the 3-D Secure and review RPCs that need Radar."""

    def __init__(
        self,
        service: PaymentsService,
        customers: CustomersService,
        payment_methods: PaymentMethodsService,
        *,
        three_d_secure: ThreeDSecureService,
        reviews: ReviewsService,
    ) -> None:
        super().__init__(service, customers, payment_methods)
        self._three_d_secure = three_d_secure
        self._reviews = reviews

    async def GetThreeDSecureChallenge(
        self, request: ppb.GetThreeDSecureChallengeRequest, context: Context
    ) -> ppb.GetThreeDSecureChallengeResponse:
        call = call_context(context)
        challenge = await self._three_d_secure.get_challenge(call.account_id, request.id)
        return ppb.GetThreeDSecureChallengeResponse(challenge=challenge_message(challenge))

    async def CompleteThreeDSecureChallenge(
        self, request: ppb.CompleteThreeDSecureChallengeRequest, context: Context
    ) -> ppb.CompleteThreeDSecureChallengeResponse:
        call = call_context(context)
        if request.outcome not in (
            ppb.THREE_D_SECURE_CHALLENGE_OUTCOME_SUCCEED,
            ppb.THREE_D_SECURE_CHALLENGE_OUTCOME_FAIL,
        ):
            raise invalid("outcome must be succeed or fail.", "outcome")
        result = await self._three_d_secure.complete(
            call.account_id,
            request.id,
            passed=request.outcome == ppb.THREE_D_SECURE_CHALLENGE_OUTCOME_SUCCEED,
            build=completion_response,
        )
        return await reply(
            result,
            ppb.CompleteThreeDSecureChallengeResponse,
            lambda done: ppb.CompleteThreeDSecureChallengeResponse.FromString(
                completion_response(*done)
            ),
            context,
        )

    async def GetReview(
        self, request: ppb.GetReviewRequest, context: Context
    ) -> ppb.GetReviewResponse:
        call = call_context(context)
        review = await self._reviews.get(call.account_id, request.id)
        return ppb.GetReviewResponse(review=review_message(review))

    async def ListReviews(
        self, request: ppb.ListReviewsRequest, context: Context
    ) -> ppb.ListReviewsResponse:
        call = call_context(context)
        reviews, more = await self._reviews.list(
            call.account_id,
            limit=request.limit or 10,
            starting_after=_optional(request, "starting_after"),
            ending_before=_optional(request, "ending_before"),
            created=created_bounds(request.created),
            open_only=_optional(request, "open"),
        )
        return ppb.ListReviewsResponse(data=[review_message(r) for r in reviews], has_more=more)

    async def ApproveReview(
        self, request: ppb.ApproveReviewRequest, context: Context
    ) -> ppb.ApproveReviewResponse:
        call = call_context(context)

        def answer(review: Review) -> ppb.ApproveReviewResponse:
            return ppb.ApproveReviewResponse(review=review_message(review))

        result = await self._reviews.approve_once(
            call.account_id,
            client_keyed(context, "ApproveReview", request, serialized(answer)),
            request.id,
        )
        return await reply(result, ppb.ApproveReviewResponse, answer, context)

    async def CloseReview(
        self, request: ppb.CloseReviewRequest, context: Context
    ) -> ppb.CloseReviewResponse:
        call = call_context(context)
        if request.action not in _CLOSE_ACTIONS:
            raise invalid("action must be refund, refund_as_fraud or cancel.", "action")
        result = await self._reviews.close_once(
            call.account_id,
            client_keyed(context, CLOSE_REVIEW, request, serialized(_closed_answer)),
            request.id,
            _CLOSE_ACTIONS[request.action],
        )
        return await reply(result, ppb.CloseReviewResponse, _closed_answer, context)

    async def resume(self, record: KeyRecord) -> None:
        if record.endpoint == COMPLETE_ENDPOINT:
            await self._three_d_secure.resume(record, completion_response)
            return
        if record.endpoint == CLOSE_REVIEW:
            # A close that died between its refund and closing the review.
            request = ppb.CloseReviewRequest.FromString(record.request_body)
            await self._reviews.finish_close(
                record, request.id, _CLOSE_ACTIONS[request.action], serialized(_closed_answer)
            )
            return
        if await self._reviews.resume_refusal(record):
            # A close's own refund or cancel, whose close did not get to finish it.
            return
        await super().resume(record)


def _closed_answer(review: Review) -> ppb.CloseReviewResponse:
    return ppb.CloseReviewResponse(review=review_message(review))


def radar_registration(servicer: RadarServicer) -> ServiceRegistration:
    return ServiceRegistration(
        full_name=rpb.DESCRIPTOR.services_by_name["RadarService"].full_name,
        add_to_server=lambda server: radar_pb2_grpc.add_RadarServiceServicer_to_server(
            servicer, server
        ),
    )
