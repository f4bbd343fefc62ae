"""Object identifiers in Stripe's style: a type prefix, an underscore, then random base62."""

import secrets
from typing import Final

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 24 base62 characters carry about 143 bits: unguessable, so an id is never a capability leak
# and collisions are not a practical concern.
_RANDOM_LENGTH: Final = 24

PREFIXES: Final = frozenset(
    {
        "acct", "pi", "ch", "re", "pm", "cus", "tok", "card", "evt", "we", "txn", "po", "req",
        "rev", "rule", "vl", "vli", "ltx", "la", "del", "recon", "key", "vtok", "auth", "op",
        "vae", "tdsc",
    }
)  # fmt: skip


# A byte below 248 (= 4 * 62) maps to a character uniformly; the few above are drawn again.
_UNBIASED_BELOW: Final = 248


def random_token(length: int = _RANDOM_LENGTH) -> str:
    """Return `length` random base62 characters from the OS CSPRNG.

    One read of random bytes per token rather than one per character: every object a payment
    creates needs an id, and per-character draws cost more than the rest of making one."""
    chars: list[str] = []
    while len(chars) < length:
        for byte in secrets.token_bytes(length + 8):
            if byte < _UNBIASED_BELOW:
                chars.append(_ALPHABET[byte % 62])
                if len(chars) == length:
                    break
    return "".join(chars)


def new_id(prefix: str) -> str:
    """Return a fresh id such as `pi_3Nf...`; the prefix must be a known object prefix."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{random_token()}"


def has_prefix(object_id: str, prefix: str) -> bool:
    """True when `object_id` looks like an id of the object type `prefix`."""
    head, sep, tail = object_id.partition("_")
    return sep == "_" and head == prefix and len(tail) > 0
