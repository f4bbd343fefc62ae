"""Object identifiers in Stripe's style: a type prefix, an underscore, then random base62."""

import re
import secrets
from typing import Final

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 24 base62 characters carry about 143 bits: unguessable, so an id is never a capability leak
# and collisions are not a practical concern.
_RANDOM_LENGTH: Final = 24
# The most random characters an id read from outside (a URL's path) may have to be taken for
# one: remit's own have _RANDOM_LENGTH, Stripe's a few more.
MAX_RANDOM_LENGTH: Final = 64
_WELL_FORMED: Final = re.compile(rf"([a-z]+)_[0-9A-Za-z]{{1,{MAX_RANDOM_LENGTH}}}")

PREFIXES: Final = frozenset(
    {
        "acct", "pi", "ch", "re", "pm", "cus", "tok", "card", "evt", "we", "txn", "po", "req",
        "rev", "rule", "vl", "vli", "ltx", "la", "del", "recon", "key", "vtok", "auth", "op",
        "vae", "tdsc", "rchg", "dp", "kevt",
    }
)  # fmt: skip


def random_string(alphabet: str, length: int) -> str:
    """`length` characters of `alphabet`, uniformly, from the OS CSPRNG.

    One draw of a number below len(alphabet)**length, written out in that base: as uniform as a
    draw per character, at one CSPRNG call instead of `length` (ids are made on every payment)."""
    base = len(alphabet)
    value = secrets.randbelow(base**length)
    chars = []
    for _ in range(length):
        value, index = divmod(value, base)
        chars.append(alphabet[index])
    return "".join(chars)


def random_token(length: int = _RANDOM_LENGTH) -> str:
    """Return `length` random base62 characters from the OS CSPRNG."""
    return random_string(_ALPHABET, length)


def new_id(prefix: str) -> str:
    """Return a fresh id such as `pi_3Nf...`; the prefix must be a known object prefix."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{random_token()}"


def has_prefix(object_id: str, prefix: str) -> bool:
    """True when `object_id` looks like an id of the object type `prefix`."""
    head, sep, tail = object_id.partition("_")
    return sep == "_" and head == prefix and len(tail) > 0


def is_well_formed_id(object_id: str, prefix: str) -> bool:
    """True when `object_id` could be an id of the object type `prefix`: the prefix, an
    underscore, then at most MAX_RANDOM_LENGTH ASCII letters and digits. Stricter than
    `has_prefix`, for text from outside that must be safe to pass on as it is (in gRPC
    metadata, which carries printable ASCII only; in a query, which refuses NUL)."""
    match = _WELL_FORMED.fullmatch(object_id)
    return match is not None and match.group(1) == prefix
