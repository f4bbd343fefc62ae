"""docs/webhooks.md lists every event type remit emits, and which of them `remit trigger`
cannot cause, as the code has them: a type added to `EVENT_TYPES` or `TRIGGERS` shows here
until the guide tells of it."""

import itertools
import re
from pathlib import Path

from remit.webhooks.event_types import EVENT_TYPES
from remit.webhooks.tools import TRIGGERS

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
EVENT_TABLE_HEADER = "| type | when |"
TRIGGER_PARAGRAPH_START = "`remit trigger TYPE`"
# An event type (`charge.dispute.created`) or a family of them (`payout.*`), in backticks.
EVENT_NAME = re.compile(r"`([a-z_]+(?:\.[a-z_]+)*\.(?:[a-z_]+|\*))`")


def _named_types(text: str) -> set[str]:
    """The event types `text` names, a family (`payout.*`) standing for its emitted types."""
    named: set[str] = set()
    for name in EVENT_NAME.findall(text):
        if name.endswith(".*"):
            family = {t for t in EVENT_TYPES if t.startswith(name[:-1])}
            assert family, f"{name} names no emitted type"
            named |= family
        else:
            named.add(name)
    return named


def _documented_types() -> set[str]:
    lines = GUIDE.read_text().splitlines()
    start = lines.index(EVENT_TABLE_HEADER) + 2  # past the header and its rule
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[start:])
    return set().union(*(_named_types(row.strip("|").split("|")[0]) for row in rows))


def _documented_not_triggerable() -> set[str]:
    paragraphs = re.split(r"\n\s*\n", GUIDE.read_text())
    (paragraph,) = (p for p in paragraphs if TRIGGER_PARAGRAPH_START in p)
    listed = paragraph.split(TRIGGER_PARAGRAPH_START, 1)[1]
    # An aside in parentheses tells how to get there, not what cannot be triggered.
    return _named_types(re.sub(r"\([^)]*\)", "", listed))


def test_the_event_table_lists_every_type_remit_emits_and_no_other() -> None:
    assert _documented_types() == EVENT_TYPES


def test_the_guide_names_the_types_remit_trigger_cannot_cause() -> None:
    assert _documented_not_triggerable() == EVENT_TYPES - set(TRIGGERS)
