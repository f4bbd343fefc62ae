"""API key material. Keys are shown once at creation and stored only as SHA-256 digests.

A key carries ~190 bits of randomness, so a fast unsalted digest is safe to store and lets a
request be authenticated with one indexed look-up.
"""

import hashlib

from remit.accounts.domain import KeyKind
from remit.core.ids import random_token

_KEY_RANDOM_LENGTH = 32
_PREFIXES = {KeyKind.SECRET: "sk", KeyKind.PUBLISHABLE: "pk"}


def generate_key(kind: KeyKind, *, livemode: bool = False) -> str:
    mode = "live" if livemode else "test"
    return f"{_PREFIXES[kind]}_{mode}_{random_token(_KEY_RANDOM_LENGTH)}"


def digest_key(presented: str) -> bytes:
    return hashlib.sha256(presented.encode("utf-8")).digest()


def looks_like_key(presented: str) -> bool:
    """Cheap shape check so garbage never reaches the database."""
    parts = presented.split("_")
    return (
        len(parts) == 3
        and parts[0] in {"sk", "pk", "rk"}
        and parts[1] in {"test", "live"}
        and 8 <= len(parts[2]) <= 128
        and parts[2].isalnum()
    )
