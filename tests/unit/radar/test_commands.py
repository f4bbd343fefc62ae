"""The `remit radar` arguments live apart from the commands, so every process starts light."""

import argparse
import subprocess
import sys

from remit.cli import build_parser
from remit.core.jsonview import enum_numbers
from remit.radar.commands import ITEM_TYPES
from remit_api.radar.v1 import radar_pb2


def test_the_value_list_types_offered_are_the_protos_a_list_may_be_created_with() -> None:
    offered = set(enum_numbers(radar_pb2.ValueListItemType.DESCRIPTOR)) - {"card_bin"}
    assert sorted(ITEM_TYPES) == sorted(offered)


def test_building_the_command_line_imports_no_grpc_database_or_http_client() -> None:
    """Every remit process builds the whole parser first; the radar and webhook commands'
    imports (gRPC stubs, SQLAlchemy, httpx) cost about 0.35 s of CPU at each start."""
    probe = (
        "import sys, remit.cli; remit.cli.build_parser(); "
        "print(sorted(m for m in ('grpc', 'sqlalchemy', 'httpx') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"


def _help(*path: str) -> str:
    """The help page of `remit radar ...` at `path`, on one line."""
    parser = build_parser()
    for name in ("radar", *path):
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return " ".join(parser.format_help().split())


def test_the_rules_help_says_they_are_listed_by_position_and_met_grouped_by_action() -> None:
    """Rules are listed by position but not evaluated in that order: a payment meets them
    grouped by action (`remit.radar.domain.decide`), position ordering each group."""
    assert (
        "rules the account's rules, by position; a payment meets them grouped by action: "
        "3-D Secure, allow, block, the built-in block of the highest risk, review "
        "(position orders each action's rules)"
    ) in _help()
    assert "list print the rules by position" in _help("rules")
    assert "evaluation order" not in _help() + _help("rules")


def test_the_history_command_takes_an_object_and_a_limit() -> None:
    parser = build_parser()
    args = parser.parse_args(["radar", "history", "--object", "rule_1"])
    assert (args.radar_group, args.radar_command, args.object, args.limit) == (
        "history",
        "list",
        "rule_1",
        100,
    )
    assert parser.parse_args(["radar", "history", "--limit", "0"]).limit == 0
    assert "who changed the rules, value lists and items" in _help()
