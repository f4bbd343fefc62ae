"""A wrapper that keeps secret values (card numbers, CVCs, API keys) out of logs and tracebacks."""

from typing import Final, Generic, TypeVar

T = TypeVar("T")

_MASK: Final = "********"


class Secret(Generic[T]):
    """Holds a sensitive value; `str`, `repr` and formatting show only a mask.

    The value is reachable only through `reveal()`, so every place that handles the plaintext
    is visible in a code search.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and bool(self._value == other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the plaintext into whatever stores the pickle.
        raise TypeError("Secret values cannot be pickled")


def mask_key(key: str) -> str:
    """Mask an API key the way Stripe echoes it in errors: prefix, stars, last four."""
    prefix, _, rest = key.rpartition("_")
    if not prefix or len(rest) < 8:
        return _MASK
    return f"{prefix}_{_MASK}{rest[-4:]}"
