"""Stripe's metadata update, the same on every object that carries metadata.

`metadata=` (empty) clears every key, `metadata[k]=` (empty) removes k, any other value sets
its key; in that order. The result may hold at most 50 keys, however it was reached: a create
is checked where its parameters are parsed, an update only once merged with what is stored.
"""

from collections.abc import Iterable, Mapping
from typing import Final

from remit.core.errors import invalid

MAX_METADATA_KEYS: Final = 50


def merged_metadata(
    current: Mapping[str, str],
    *,
    clear: bool = False,
    unset: Iterable[str] = (),
    values: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The merge alone, unchecked: for a change already checked against the limit and applied
    later, when refusing it is no longer possible (a capture the network has made)."""
    merged = {} if clear else dict(current)
    for key in unset:
        merged.pop(key, None)
    merged.update(values or {})
    return merged


def updated_metadata(
    current: Mapping[str, str],
    *,
    clear: bool = False,
    unset: Iterable[str] = (),
    values: Mapping[str, str] | None = None,
) -> dict[str, str]:
    merged = merged_metadata(current, clear=clear, unset=unset, values=values)
    if len(merged) > MAX_METADATA_KEYS:
        raise invalid(
            f"Invalid metadata: an object can have at most {MAX_METADATA_KEYS} keys; this "
            f"update would leave {len(merged)}. Unset some keys (metadata[key]=) first.",
            "metadata",
        )
    return merged
