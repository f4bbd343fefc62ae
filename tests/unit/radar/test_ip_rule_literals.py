"""An IP address written in a rule is the address, however it is spelled: `:ip_address:` holds
the canonical spelling (remit.radar.ip_addresses), and so does every literal it is compared
with, in a rule saved now or stored before."""

import pytest

from remit.radar import gate
from remit.radar.rules import RuleSyntaxError, parse_predicate

PAYMENT = {"ip_address": "203.0.113.5"}
V6_PAYMENT = {"ip_address": "2001:db8::1"}


@pytest.mark.parametrize(
    ("predicate", "signals"),
    [
        (":ip_address: = '::ffff:203.0.113.5'", PAYMENT),
        (":ip_address: = '::FFFF:cb00:7105'", PAYMENT),
        ("'::ffff:203.0.113.5' = :ip_address:", PAYMENT),
        (":ip_address: in ('198.51.100.1', '::ffff:203.0.113.5')", PAYMENT),
        (":ip_address: = '2001:0DB8:0000:0000:0000:0000:0000:0001'", V6_PAYMENT),
        (":ip_address: = ' 2001:db8:0:0::1 '", V6_PAYMENT),
        (":ip_address: in ('2001:DB8::1')", V6_PAYMENT),
    ],
)
def test_an_address_in_a_rule_matches_the_payment_from_it_however_spelled(
    predicate: str, signals: dict[str, object]
) -> None:
    assert parse_predicate(predicate).run(signals, {}) is True
    negated = predicate.replace(" = ", " != ").replace(" in ", " not in ")
    assert parse_predicate(negated).run(signals, {}) is False


def test_a_rule_stored_before_with_another_spelling_matches_when_evaluated() -> None:
    """Stored rules are compiled from their text when a payment meets them: the same parser,
    so no rewrite of what was saved is needed."""
    gate.compiled.cache_clear()
    compiled = gate.compiled(":ip_address: != '::ffff:203.0.113.5'")
    assert compiled is not None
    assert compiled.run(PAYMENT, {}) is False


def test_the_rule_keeps_the_text_it_was_written_with() -> None:
    predicate = ":ip_address: = '::ffff:203.0.113.5'"
    assert parse_predicate(predicate).text == predicate


@pytest.mark.parametrize(
    "predicate",
    [":ip_address: = '203.0.113.500'", ":ip_address: in ('203.0.113.5', 'localhost')"],
)
def test_something_that_is_no_ip_address_compared_with_one_is_refused(predicate: str) -> None:
    """It could never match, and its `!=` would match every payment that has an IP."""
    with pytest.raises(RuleSyntaxError, match="not an IP address"):
        parse_predicate(predicate)


def test_other_strings_are_compared_as_written() -> None:
    assert parse_predicate(":email: = '::ffff:203.0.113.5'").run(
        {"email": "::ffff:203.0.113.5"}, {}
    )
