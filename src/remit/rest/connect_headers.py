"""`Stripe-Account` and `Stripe-Context`: Connect's headers, which remit does not serve.

With Stripe, a platform's key plus `Stripe-Account: acct_…` (or its newer equivalent,
`Stripe-Context`) acts on a connected account; the official SDKs send both from request options
(shared reference stripe-wire.md, §1). remit has no Connect: a request naming another account
must not be served as if it named the key's own, which would move money on the wrong account.
Stripe answers an account that is no Connect platform, whatever account it names, with a 403
`invalid_request_error`, "Only Stripe Connect platforms can work with other accounts. …" (2°:
https://github.com/stripe/stripe-apps/issues/505 for the status,
https://github.com/cartalyst/stripe/issues/84 for the header), which stripe-python raises as
PermissionError; so does remit.

A header naming the key's own account asks for nothing else, and is served: SDK users set it to
their own account at times. An empty one names no account and is ignored (the reference says
nothing of it; the SDKs never send one), and so is one of whitespace alone, which is an empty
value once HTTP's whitespace around a value is trimmed, as servers trim it: both headers alike,
and each copy of a header alike.
"""

from collections.abc import Iterable
from typing import Final

from starlette.datastructures import Headers

from remit.rest.errors import StripeError

HEADERS: Final = ("Stripe-Account", "Stripe-Context")


def refuse_other_accounts(headers: Headers, account_id: str) -> None:
    """Raise Stripe's 403 if either header names anything but `account_id`, the account of the
    key the request authenticated with. Every copy of a header is read: a second one naming
    another account must not hide behind a first naming the key's own."""
    for header in HEADERS:
        named = _other_account(headers.getlist(header), account_id)
        if named is not None:
            raise StripeError.connect_not_supported(header, named)


def _other_account(values: Iterable[str], account_id: str) -> str | None:
    for value in values:
        # The whitespace around a value is no part of it (RFC 9110 §5.5); a server trims it, a
        # client calling the app directly (tests) may not.
        named = value.strip()
        if named and named != account_id:
            return named
    return None
