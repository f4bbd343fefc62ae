"""Stripe's metadata update order, and its 50-key limit on the result."""

import pytest

from remit.core.errors import RemitError
from remit.core.metadata import MAX_METADATA_KEYS, updated_metadata

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
