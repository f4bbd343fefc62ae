"""Rewriting the strings a predicate compares with one attribute, guided by its parse: for a
card's fingerprint named in a rule when the card gets its account's own."""

import pytest

from remit.radar.rules import RuleSyntaxError, parse_predicate, replace_compared_strings

NEW = {"OldPrint": "NewPrint"}


@pytest.mark.parametrize(
    ("predicate", "rewritten"),
    [
        (":card_fingerprint: = 'OldPrint'", ":card_fingerprint: = 'NewPrint'"),
        ("'OldPrint' != :card_fingerprint:", "'NewPrint' != :card_fingerprint:"),
        # Compared as the rule compares it: casefolded.
        (":card_fingerprint: = 'oldprint'", ":card_fingerprint: = 'NewPrint'"),
        (
            ":card_fingerprint: in ('Other', 'OldPrint')",
            ":card_fingerprint: in ('Other', 'NewPrint')",
        ),
        (
            "not (:card_fingerprint: not in ('OldPrint') and :amount: > 5)",
            "not (:card_fingerprint: not in ('NewPrint') and :amount: > 5)",
        ),
        (
            "  :email: = 'OldPrint' or :card_fingerprint: = 'OldPrint'",
            ":email: = 'OldPrint' or :card_fingerprint: = 'NewPrint'",
        ),
    ],
)
def test_only_the_strings_compared_with_the_attribute_are_rewritten(
    predicate: str, rewritten: str
) -> None:
    assert replace_compared_strings(predicate, "card_fingerprint", NEW) == rewritten
    parse_predicate(rewritten)


@pytest.mark.parametrize(
    "predicate",
    [
        ":customer: = 'OldPrint'",
        ":email: in ('OldPrint', 'x')",
        ":card_fingerprint: = 'OldPrintToo'",
        ":card_fingerprint: in @OldPrint",
        ":card_fingerprint: = :customer: and :customer: != 'OldPrint'",
    ],
)
def test_the_same_string_anywhere_else_is_left_as_it_is(predicate: str) -> None:
    assert replace_compared_strings(predicate, "card_fingerprint", NEW) == predicate


def test_a_new_value_is_quoted_as_the_parser_reads_it() -> None:
    rewritten = replace_compared_strings(
        ":card_fingerprint: = 'OldPrint'", "card_fingerprint", {"OldPrint": "it's\\"}
    )

    assert rewritten == ":card_fingerprint: = 'it\\'s\\\\'"
    assert parse_predicate(rewritten).run({"card_fingerprint": "it's\\"}, {})


def test_a_predicate_that_does_not_parse_is_refused() -> None:
    with pytest.raises(RuleSyntaxError):
        replace_compared_strings(":card_fingerprint: = ", "card_fingerprint", NEW)
