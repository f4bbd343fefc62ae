"""The arguments of `remit radar ...` (run by `remit.radar.tools`).

Kept apart from the commands themselves: every remit process builds the whole command line
parser when it starts, and the commands import gRPC stubs and the webhook tools, about 0.35 s
of CPU that a core, vault or acquirer process never needs.
"""

import argparse

# The wire names of ValueListItemType a new list may have (a unit test keeps them equal to the
# proto enum's, but for card_bin: no BIN reaches the core, so no rule could use such a list).
ITEM_TYPES = (
    "card_fingerprint",
    "case_sensitive_string",
    "country",
    "customer_id",
    "email",
    "ip_address",
    "string",
)


# The changes `remit radar history` prints unless told otherwise: the latest, not years of them.
DEFAULT_HISTORY_LINES = 100


def add_commands(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
) -> list[argparse.ArgumentParser]:
    """Adds `radar` and returns its leaf parsers (the caller adds platform flags to them)."""
    radar = commands.add_parser("radar", help="manage Radar rules and value lists")
    groups = radar.add_subparsers(dest="radar_group", required=True)
    rules = groups.add_parser(
        "rules",
        help="the account's rules, by position; a payment meets them grouped by action: "
        "3-D Secure, allow, block, the built-in block of the highest risk, review "
        "(position orders each action's rules)",
    )
    rule_actions = rules.add_subparsers(dest="radar_command", required=True)
    add = rule_actions.add_parser("add", help='add a rule, e.g. "Block if :risk_score: > 85"')
    add.add_argument("rule")
    add.add_argument("--position", type=int, help="insert at this position (default: last)")
    listing = rule_actions.add_parser("list", help="print the rules by position")
    remove = rule_actions.add_parser("remove", help="delete a rule")
    remove.add_argument("rule_id")
    lists = groups.add_parser("lists", help="value lists referred to as @alias in rules")
    list_actions = lists.add_subparsers(dest="radar_command", required=True)
    create = list_actions.add_parser("create", help="create a value list")
    create.add_argument("alias")
    create.add_argument("--name", help="display name (default: the alias)")
    create.add_argument("--type", choices=ITEM_TYPES, default="string")
    item = list_actions.add_parser("add", help="add a value to a list")
    item.add_argument("value_list", help="vl_ id")
    item.add_argument("value")
    lists_listing = list_actions.add_parser("list", help="print the value lists")
    history = groups.add_parser(
        "history",
        help="print who changed the rules, value lists and items, and how, newest first",
        description="One line per change: when, its id, who asked (the key_ id of the API key, "
        "or remit), created/updated/deleted, what (type and id), a rule's version, and the "
        "object before -> after as JSON. Kept for good; a charge's Radar verdict names the "
        "version of the rule that decided it.",
    )
    history.set_defaults(radar_command="list")
    history.add_argument(
        "--object", help="only this rule_, vl_ or vli_ id's changes (a list's with its items')"
    )
    history.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_HISTORY_LINES,
        help=f"print at most this many, the newest (default {DEFAULT_HISTORY_LINES}; 0: all)",
    )
    return [add, listing, remove, create, item, lists_listing, history]
