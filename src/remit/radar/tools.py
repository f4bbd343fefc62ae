"""`remit radar ...`: rules and value lists from the command line, over RadarService.

remit radar rules add "Block if :risk_score: > 85" [--position 0]
remit radar rules list
remit radar rules remove rule_...
remit radar lists create trusted --name "Trusted cards" --type card_fingerprint
remit radar lists add vl_... VALUE
remit radar lists list
remit radar history [--object rule_...|vl_...|vli_...] [--limit 100]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC
from typing import Protocol, TextIO, TypeVar

import grpc

from remit.config import PlatformConfig
from remit.core.jsonview import enum_numbers, to_json
from remit.grpcutil.call_failures import call_failed
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.radar.rules import RuleSyntaxError, parse_rule
from remit.webhooks.tools import Metadata, ToolError, account_metadata
from remit_api.radar.v1 import radar_pb2 as pb
from remit_api.radar.v1 import radar_pb2_grpc

Reply = TypeVar("Reply")
# The largest page the core serves; the listing commands ask for pages until there are no more.
PAGE_LIMIT = 100
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
            raise call_failed(error, "core", config.core.target, ToolError) from None


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Identified)


async def every_page(
    fetch: Callable[[str | None], Awaitable[tuple[Sequence[Item], bool]]],
) -> list[Item]:
    """Every item of a listing, page after page (`fetch(starting_after)`), until has_more is
    false: an account may have 200 rules and any number of lists, more than one page holds."""
    found: list[Item] = []
    after: str | None = None
    while True:
        data, more = await fetch(after)
        found.extend(data)
        if not more or not data:
            return found
        after = data[-1].id


async def _every_rule(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, metadata: Metadata
) -> list[pb.Rule]:
    async def fetch(after: str | None) -> tuple[Sequence[pb.Rule], bool]:
        request = pb.ListRulesRequest(limit=PAGE_LIMIT)
        if after is not None:
            request.starting_after = after
        page = await stub.ListRules(request, metadata=metadata)
        return page.data, page.has_more

    return await every_page(fetch)


async def _every_value_list(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, metadata: Metadata
) -> list[pb.ValueList]:
    async def fetch(after: str | None) -> tuple[Sequence[pb.ValueList], bool]:
        request = pb.ListValueListsRequest(limit=PAGE_LIMIT)
        if after is not None:
            request.starting_after = after
        page = await stub.ListValueLists(request, metadata=metadata)
        return page.data, page.has_more

    return await every_page(fetch)


async def _changes(
    stub: radar_pb2_grpc.RadarServiceAsyncStub, metadata: Metadata, object_id: str | None, most: int
) -> list[pb.RadarChange]:
    """The newest `most` changes (all of them for 0), page after page."""
    found: list[pb.RadarChange] = []
    after: str | None = None
    while most <= 0 or len(found) < most:
        request = pb.ListChangesRequest(limit=PAGE_LIMIT)
        if most > 0:
            request.limit = min(PAGE_LIMIT, most - len(found))
        if after is not None:
            request.starting_after = after
        if object_id is not None:
            request.object = object_id
        page = await stub.ListChanges(request, metadata=metadata)
        found.extend(page.data)
        if not page.has_more or not page.data:
            break
        after = page.data[-1].id
    return found


def change_line(change: pb.RadarChange) -> str:
    """when, id, who, action, what, version, and the object before -> after, tab-separated."""
    when = change.created.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")
    version = f"v{change.rule_version}" if change.HasField("rule_version") else ""
    states = [change.before if change.HasField("before") else "", change.after]
    detail = " -> ".join(state for state in states if state)
    return "\t".join(
        [
            when,
            change.id,
            change.changed_by,
            change.action,
            change.object_type,
            change.object_id,
            version,
            detail,
        ]
    )


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
        for rule in await _call(config, api_key, _every_rule):
            action = pb.RuleAction.Name(rule.action).removeprefix("RULE_ACTION_").lower()
            line = f"{rule.position}\t{rule.id}\t{action}\t{rule.predicate}"
            if rule.HasField("invalid_reason"):
                # Stored before a check saving makes now, which it fails: it never runs.
                line += f"\tINVALID, does not run: {rule.invalid_reason}"
            print(line, file=out)
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
    elif group == "history":
        changes = await _call(
            config, api_key, lambda s, md: _changes(s, md, args.object, args.limit)
        )
        for change in changes:
            print(change_line(change), file=out)
    elif group == "lists" and command == "add":
        request_item = pb.AddValueListItemRequest(value_list=args.value_list, value=args.value)
        added = await _call(
            config, api_key, lambda s, md: s.AddValueListItem(request_item, metadata=md)
        )
        _print(added.value_list_item, out)
    else:
        for value_list in await _call(config, api_key, _every_value_list):
            print(f"{value_list.id}\t@{value_list.alias}\t{value_list.name}", file=out)
    return 0
