"""Stripe's metadata update, the same on every object that carries metadata.

`metadata=` (empty) clears every key, `metadata[k]=` (empty) removes k, any other value sets
its key; in that order. The result may hold at most 50 keys, however it was reached: a create
is checked where its parameters are parsed, an update only once merged with what is stored.
What one request sets is held to Stripe's limits on keys and values (`requested_metadata`).
"""

from collections.abc import Iterable, Mapping
from typing import Final

from remit.core.errors import invalid
from remit.core.text_limits import quoted_start

MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_LENGTH: Final = 40
MAX_METADATA_VALUE_LENGTH: Final = 500


def requested_metadata(values: Mapping[str, str], param: str = "metadata") -> dict[str, str]:
    """The metadata a request sets, held to Stripe's limits: at most 50 keys, each named (not
    empty) in at most 40 characters, each value at most 500. The REST facade checks them where
    it parses a request; the core checks them again, for every caller: an object stored past
    them would break the rules every later update of it is held to."""
    if len(values) > MAX_METADATA_KEYS:
        raise invalid(
            f"Invalid {param}: you can specify up to {MAX_METADATA_KEYS} keys, but "
            f"{len(values)} were given.",
            param,
        )
    for key, value in values.items():
        if not key:
            raise invalid(f"Invalid {param}: keys must not be empty.", param)
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise invalid(
                f"Invalid {param}: the key '{quoted_start(key)}' is longer than "
                f"{MAX_METADATA_KEY_LENGTH} characters.",
                param,
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise invalid(
                f"Invalid {param}: the value of '{key}' is longer than "
                f"{MAX_METADATA_VALUE_LENGTH} characters.",
                f"{param}[{key}]",
            )
    return dict(values)


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
