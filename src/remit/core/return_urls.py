"""Where a cardholder goes once a redirect (the 3-D Secure page) is done with them."""

import re
from typing import Final
from urllib.parse import quote, unquote_plus, urlsplit

from remit.core.errors import invalid

# A scheme as RFC 3986 spells it. Apps' own schemes (`myapp://done`) are allowed, as on Stripe,
# for payments made in mobile apps.
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# Schemes that run or embed content where they are opened rather than take the cardholder
# somewhere: the 3-D Secure page sends the cardholder to the return_url.
_REFUSED_SCHEMES: Final = frozenset({"javascript", "data", "vbscript", "file", "blob"})
MAX_RETURN_URL_LENGTH: Final = 2048


def return_to(return_url: str, intent_id: str, client_secret: str) -> str:
    """Stripe's way back: the merchant's return_url with the intent and its client secret
    added to its query, which the merchant's page needs to look up how the payment ended.

    Into the query, before any fragment (`#step-2`): after it, the browser never sends them,
    and the page would read them, if at all, as part of the fragment. The URL is cut where
    `urlsplit` cuts it (the fragment at the first `#`, the query at the first `?` before it)
    but not put together again by `urlunsplit`, which rewrites some URLs (`myapp:///done`
    comes back `myapp:/done`): the rest of the merchant's URL stays as it was written. A
    parameter of these names the merchant's URL has already is left out, so that the page
    reads this intent's, whichever of two it would have taken."""
    before_fragment, hash_mark, fragment = return_url.partition("#")
    base, _, query = before_fragment.partition("?")
    kept = [part for part in query.split("&") if part and _param_name(part) not in _ADDED]
    added = f"payment_intent={quote(intent_id)}&payment_intent_client_secret={quote(client_secret)}"
    return f"{base}?{'&'.join([*kept, added])}{hash_mark}{fragment}"


# The parameters `return_to` adds.
_ADDED: Final = frozenset({"payment_intent", "payment_intent_client_secret"})


def _param_name(part: str) -> str:
    return unquote_plus(part.partition("=")[0])


def return_url_problem(return_url: str, *, with_length: bool = True) -> str | None:
    """What is wrong with `return_url` as a place to send a cardholder, or None: it must be
    an absolute URL (a scheme, an app's own is fine; a host for http and https), without spaces
    or control characters, and not of a scheme that runs code where it is opened."""
    scheme, _, rest = return_url.partition(":")
    if with_length and len(return_url) > MAX_RETURN_URL_LENGTH:
        return f"it is longer than {MAX_RETURN_URL_LENGTH} characters"
    if not rest or not _SCHEME.fullmatch(scheme):
        return "an explicit scheme (such as https) must be provided"
    if scheme.lower() in _REFUSED_SCHEMES:
        return f"the {scheme.lower()} scheme is not allowed"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in return_url):
        return "it contains spaces or control characters"
    return _address_problem(return_url, web=scheme.lower() in ("http", "https"))


def _address_problem(url: str, *, web: bool) -> str | None:
    """What is wrong with where `url` leads, as `urlsplit` reads it (which the page, and the
    merchant's browser, must be able to), or None. `web`: an http or https URL, which needs a
    host, and whose port, if any, must be a port number other than 0 (an app's own scheme may
    use the rest of its URL as it likes)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        # Brackets that do not close, or hold no IP address (`https://[::1`, `http://[zz]/`).
        return "its host is not a valid name or IP address"
    if not web:
        return None
    if not parts.hostname:
        return "it has no host"
    try:
        port = parts.port  # raises for a port that is no number, or out of range
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        # `urlsplit` reads port 0 as a port, but nothing can be reached on it: a browser
        # sent there fails.
        return "its port is not a number from 1 to 65535"
    return None


def refuse_invalid_return_url(return_url: str | None) -> None:
    """Refuse a `return_url` given to a payment as Stripe refuses a bad URL (`url_invalid`)."""
    if return_url is None:
        return
    problem = return_url_problem(return_url)
    if problem is not None:
        raise invalid(f"Invalid URL: {problem}.", "return_url", code="url_invalid")


def may_send_cardholder_to(url: str) -> bool:
    """Whether the 3-D Secure page may link or redirect to `url` (a return_url with the
    intent's parameters appended). Checked again where it is used: an intent stored before
    return_urls were checked may hold one that is not."""
    return return_url_problem(url, with_length=False) is None


# What a host may be in a Content-Security-Policy source: names (IDNs in their ASCII form) and
# IPv4 addresses, or IPv6 ones (bracketed there).
_CSP_NAME: Final = re.compile(r"[a-z0-9.-]+")
_CSP_IPV6: Final = re.compile(r"[0-9a-f:.]+")


def csp_source_of(url: str) -> str | None:
    """`url`'s origin as a Content-Security-Policy source (`https://shop.example:8443`, or
    `myapp:` for an app's own scheme), or None when it cannot be written as one safely."""
    if not may_send_cardholder_to(url):
        return None
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return f"{scheme}:"
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return None
    if _CSP_NAME.fullmatch(host):
        origin = f"{scheme}://{host}"
    elif _CSP_IPV6.fullmatch(host):
        origin = f"{scheme}://[{host}]"
    else:
        return None
    return origin if port is None else f"{origin}:{port}"
