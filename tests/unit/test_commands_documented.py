"""Every command the README and the guides name in code (`remit ledger verify`, or a group's
command without the `remit`, `ledger verify`) is one the CLI has."""

import argparse
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from remit.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _commands(parser: argparse.ArgumentParser) -> Mapping[str, argparse.ArgumentParser]:
    """The parser's subcommands by name; empty for a command that has none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


TOP: Mapping[str, argparse.ArgumentParser] = _commands(build_parser())
GROUPS = sorted(name for name, parser in TOP.items() if _commands(parser))


def _unknown(words: list[str]) -> str | None:
    """The first word of `words` that is no command where it stands, if any."""
    commands = TOP
    for word in words:
        if not commands:
            return None  # past the command: its arguments
        if word not in commands:
            return word
        commands = _commands(commands[word])
    return None


def _named(text: str) -> list[list[str]]:
    named = [m.split() for m in re.findall(r"`remit ([a-z][a-z-]*(?: [a-z][a-z-]*)*)", text)]
    group = "|".join(map(re.escape, GROUPS))
    named += [m.split() for m in re.findall(rf"`((?:{group}) [a-z][a-z-]*)", text)]
    return named


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_command_named_is_one_the_cli_has(document: Path) -> None:
    text = document.read_text()
    unknown = [" ".join(words) for words in _named(text) if _unknown(words) is not None]
    assert unknown == []


def test_an_unknown_command_is_found() -> None:
    assert _named("the `ledger reconcile` work") == [["ledger", "reconcile"]]
    assert _unknown(["ledger", "reconcile"]) == "reconcile"
    assert _unknown(["ledger", "verify", "--account"]) is None
