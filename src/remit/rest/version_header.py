"""`Stripe-Version`: the API version a request asks for, and the version an error renders at
before the request's own is resolved.

A request renders at the version its header names, else at its account's pin
(`Dependencies.resolve_version`). An error raised before that is settled renders as close to
it as is known by then: the header's version when it names a known one; once the client is
authenticated, the account's pin when the header names none; else the latest. So a 401, which
comes before anyone is known, can say only the header's version or the latest.

An empty header names no version and is ignored, as an empty `Stripe-Account` or
`Stripe-Context` is (`remit.rest.connect_headers`), and so is one of whitespace alone, which is
an empty value once HTTP's whitespace around a value is trimmed (RFC 9110 §5.5), as servers
trim it; a client calling the app directly (tests) may not.
"""

from typing import Final

from starlette.datastructures import Headers

from versions import KNOWN_VERSIONS, LATEST_VERSION

HEADER: Final = "Stripe-Version"
_KNOWN: Final = frozenset(KNOWN_VERSIONS)


def requested_version(headers: Headers) -> str | None:
    """The version the request's header names, trimmed; None when it sends none, or an empty
    one. Not checked: an unknown version is the caller's to refuse."""
    value = headers.get(HEADER)
    if value is None:
        return None
    return value.strip() or None


def error_version(requested: str | None, pinned: str | None = None) -> str:
    """The version an error renders at before the request's is resolved: `requested` (the
    header's) when it is a known version, else `pinned` (the account's, once the client is
    authenticated), else the latest, which an account that has none is pinned to."""
    for version in (requested, pinned):
        if version is not None and version in _KNOWN:
            return version
    return LATEST_VERSION
