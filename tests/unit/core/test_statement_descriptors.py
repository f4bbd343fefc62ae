"""Stripe's statement descriptor rules, the one statement of them that the REST facade, the
payments service and the payouts of the ledger all apply."""

import pytest

from remit.core.errors import ErrorKind, RemitError
from remit.core.statement_descriptors import (
    DescriptorProblem,
    refuse_invalid_payment_descriptors,
    refuse_invalid_statement_descriptor,
    statement_descriptor_problem,
)


def _problem(text: str, *, needs_letter: bool = True) -> DescriptorProblem:
    problem = statement_descriptor_problem(text, "statement_descriptor", needs_letter=needs_letter)
    assert problem is not None, text
    return problem


@pytest.mark.parametrize(
    "text",
    ["ACME SHOP 42", "x" * 22, "SHOPS", "CAFÉ MÜLLER", "Straße 12", "A.B.C. & SONS-1",
     "shop #42 (web)"],
)  # fmt: skip
@pytest.mark.parametrize("needs_letter", [True, False])
def test_descriptors_of_latin_text_up_to_22_characters_are_accepted(
    text: str, needs_letter: bool
) -> None:
    assert statement_descriptor_problem(text, "p", needs_letter=needs_letter) is None


@pytest.mark.parametrize("needs_letter", [True, False])
def test_a_descriptor_over_22_characters_is_refused_quoting_only_its_start(
    needs_letter: bool,
) -> None:
    problem = _problem("ACME SHOP " + "x" * 13, needs_letter=needs_letter)
    assert problem == DescriptorProblem(
        "Invalid string: ACME SHOP xx...; must be at most 22 characters", "parameter_invalid"
    )


@pytest.mark.parametrize(
    "text", ["shop<script>", "a\\bcdef", "a*bcdef", "SHOP'S PLACE", 'SAY "HI"', "a>b shop"]
)
@pytest.mark.parametrize("needs_letter", [True, False])
def test_the_characters_stripe_refuses_are_refused_without_echoing_the_value(
    text: str, needs_letter: bool
) -> None:
    problem = _problem(text, needs_letter=needs_letter)
    assert problem.code == "invalid_characters"
    assert problem.message.startswith("Invalid statement_descriptor: it may not contain")
    assert text not in problem.message


@pytest.mark.parametrize(
    "text", ["a\nbcdef", "shop\tone", "shop\x00", "日本語の店", "МАГАЗИН", "SHOP \u20ac5"]
)
@pytest.mark.parametrize("needs_letter", [True, False])
def test_only_latin_characters_are_accepted(text: str, needs_letter: bool) -> None:
    problem = _problem(text, needs_letter=needs_letter)
    assert problem.code == "invalid_characters"
    assert "only Latin characters" in problem.message


def test_a_full_descriptor_needs_five_characters_and_a_letter_a_suffix_neither() -> None:
    assert _problem("SHOP") == DescriptorProblem(
        "Invalid statement_descriptor: SHOP must be at least 5 characters.", "parameter_invalid"
    )
    assert _problem("2024-11-22") == DescriptorProblem(
        "Invalid statement_descriptor: 2024-11-22 must contain at least one letter.",
        "parameter_invalid",
    )
    for suffix in ("A1", "12345", "2024-11-22"):
        assert statement_descriptor_problem(suffix, "p", needs_letter=False) is None


@pytest.mark.parametrize("needs_letter", [True, False])
def test_an_empty_descriptor_is_refused(needs_letter: bool) -> None:
    """Clearing a descriptor is the caller's to express (an update's empty value, read as
    None); an empty one given is a statement showing nothing."""
    assert _problem("", needs_letter=needs_letter) == DescriptorProblem(
        "Invalid statement_descriptor: it may not be empty.", "parameter_invalid"
    )


def test_a_refusal_is_an_invalid_argument_naming_its_parameter() -> None:
    with pytest.raises(RemitError) as refused:
        refuse_invalid_statement_descriptor("ab*cdef", "statement_descriptor", needs_letter=False)
    error = refused.value
    assert (error.kind, error.code, error.param) == (
        ErrorKind.INVALID_ARGUMENT,
        "invalid_characters",
        "statement_descriptor",
    )
    refuse_invalid_statement_descriptor(None, "statement_descriptor", needs_letter=True)


def test_a_payments_descriptors_are_each_held_to_their_own_rules() -> None:
    refuse_invalid_payment_descriptors("REMIT STORE", "6735")
    refuse_invalid_payment_descriptors(None, None)
    with pytest.raises(RemitError) as full:
        refuse_invalid_payment_descriptors("6735", None)
    assert (full.value.param, full.value.code) == ("statement_descriptor", "parameter_invalid")
    with pytest.raises(RemitError) as suffix:
        refuse_invalid_payment_descriptors("REMIT STORE", "ORDER <6735>")
    assert (suffix.value.param, suffix.value.code) == (
        "statement_descriptor_suffix",
        "invalid_characters",
    )
