"""Stripe's metadata update order, its 50-key limit on the result, and its limits on what one
request sets."""

import pytest

from remit.core.errors import RemitError
from remit.core.metadata import MAX_METADATA_KEYS, requested_metadata, updated_metadata

FULL = {f"k{n}": "v" for n in range(MAX_METADATA_KEYS)}


def test_clear_then_unset_then_set() -> None:
    current = {"a": "1", "b": "2"}
    assert updated_metadata(current, unset=["a"], values={"c": "3"}) == {"b": "2", "c": "3"}
    assert updated_metadata(current, clear=True, values={"c": "3"}) == {"c": "3"}
    assert updated_metadata(current, unset=["a"], values={"a": "again"}) == {
        "a": "again",
        "b": "2",
    }
    assert updated_metadata(current) == current


def test_the_limit_applies_to_the_result_of_the_update() -> None:
    with pytest.raises(RemitError) as refused:
        updated_metadata(FULL, values={"one_more": "v"})
    assert (refused.value.param, refused.value.code) == ("metadata", "parameter_invalid")
    assert "51" in refused.value.message
    # Replacing keys, or making room first, stays within it.
    assert len(updated_metadata(FULL, values={"k0": "new"})) == MAX_METADATA_KEYS
    assert len(updated_metadata(FULL, unset=["k0"], values={"other": "v"})) == MAX_METADATA_KEYS


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({f"k{n}": "v" for n in range(MAX_METADATA_KEYS + 1)}, "metadata"),
        ({"": "v"}, "metadata"),
        ({"k" * 41: "v"}, "metadata"),
        ({"order": "v" * 501}, "metadata[order]"),
    ],
)
def test_what_one_request_sets_is_held_to_stripes_limits(
    values: dict[str, str], param: str
) -> None:
    with pytest.raises(RemitError) as refused:
        requested_metadata(values)
    assert (refused.value.param, refused.value.code) == (param, "parameter_invalid")


def test_metadata_at_the_limits_is_taken_as_it_is() -> None:
    values = {f"{n:02}" + "k" * 38: "v" * 500 for n in range(MAX_METADATA_KEYS)}
    assert requested_metadata(values) == values
    assert requested_metadata({}) == {}
    with pytest.raises(RemitError) as refused:
        requested_metadata({"": "v"}, "payment_method_data[metadata]")
    assert refused.value.param == "payment_method_data[metadata]"
