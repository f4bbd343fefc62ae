"""`remit radar ...`: rules and value lists from the command line, over RadarService.

remit radar rules add "Block if :risk_score: > 85" [--position 0]
remit radar rules list
remit radar rules remove rule_...
remit radar lists create trusted --name "Trusted cards" --type card_fingerprint
remit radar lists add vl_... VALUE
remit radar lists list
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

import grpc

from remit.config import PlatformConfig
from remit.core.jsonview import enum_numbers, to_json
from remit.grpcutil.call_failures import describe_call_failure
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.radar.rules import RuleSyntaxError, parse_rule
from remit.webhooks.tools import Metadata, ToolError, account_metadata
from remit_api.radar.v1 import radar_pb2 as pb
from remit_api.radar.v1 import radar_pb2_grpc

Reply = TypeVar("Reply")
_ACTIONS = enum_numbers(pb.RuleAction.DESCRIPTOR)
_ITEM_TYPES = enum_numbers(pb.ValueListItemType.DESCRIPTOR)


async def _call(
    config: PlatformConfig,
    api_key: str,
    send: Callable[[radar_pb2_grpc.RadarServiceAsyncStub, Metadata], Awaitable[Reply]],
) -> Reply:
    async with internal_channel(config.core.target, InternalAccess.of(config)) as channel:
        metadata = await account_metadata(channel, api_key)
        try:
            return await send(radar_pb2_grpc.RadarServiceStub(channel), metadata)
        except grpc.aio.AioRpcError as error:
            raise ToolError(describe_call_failure(error, "core", config.core.target)) from None


def _print(message: object, out: TextIO) -> None:
    print(json.dumps(to_json(message), indent=2), file=out, flush=True)  # type: ignore[arg-type]


async def run_command(
    config: PlatformConfig, args: argparse.Namespace, api_key: str, out: TextIO
) -> int:
    group, command = args.radar_group, args.radar_command
    if group == "rules" and command == "add":
        try:
            parsed = parse_rule(args.rule)
        except RuleSyntaxError as error:
            raise ToolError(f"invalid rule: {error}") from None
        request = pb.CreateRuleRequest(
            action=_ACTIONS[parsed.action],  # type: ignore[arg-type]
            predicate=parsed.predicate.text,
        )
        if args.position is not None:
            request.position = args.position
        created = await _call(config, api_key, lambda s, md: s.CreateRule(request, metadata=md))
        _print(created.rule, out)
    elif group == "rules" and command == "list":
        page = await _call(
            config, api_key, lambda s, md: s.ListRules(pb.ListRulesRequest(limit=100), metadata=md)
        )
        for rule in page.data:
            action = pb.RuleAction.Name(rule.action).removeprefix("RULE_ACTION_").lower()
            print(f"{rule.position}\t{rule.id}\t{action}\t{rule.predicate}", file=out)
    elif group == "rules" and command == "remove":
        request_delete = pb.DeleteRuleRequest(id=args.rule_id)
        deleted = await _call(
            config, api_key, lambda s, md: s.DeleteRule(request_delete, metadata=md)
        )
        _print(deleted.deleted_rule, out)
    elif group == "lists" and command == "create":
        request_list = pb.CreateValueListRequest(
            alias=args.alias,
            name=args.name or args.alias,
            item_type=_ITEM_TYPES[args.type],  # type: ignore[arg-type]
        )
        made = await _call(
            config, api_key, lambda s, md: s.CreateValueList(request_list, metadata=md)
        )
        _print(made.value_list, out)
    elif group == "lists" and command == "add":
        request_item = pb.AddValueListItemRequest(value_list=args.value_list, value=args.value)
        added = await _call(
            config, api_key, lambda s, md: s.AddValueListItem(request_item, metadata=md)
        )
        _print(added.value_list_item, out)
    else:
        lists = await _call(
            config,
            api_key,
            lambda s, md: s.ListValueLists(pb.ListValueListsRequest(limit=100), metadata=md),
        )
        for value_list in lists.data:
            print(f"{value_list.id}\t@{value_list.alias}\t{value_list.name}", file=out)
    return 0
