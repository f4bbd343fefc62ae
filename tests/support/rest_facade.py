"""The REST facade with its gRPC side faked, for tests whose requests stop short of the services
(or reach only the fakes they are given)."""

from typing import Any, cast

from remit.accounts.domain import KeyKind, Principal
from remit.rest.auth import Authenticator, Lookup
from remit.rest.dependencies import Dependencies
from remit.rest.rate_limits import RateLimits
from versions import LATEST_VERSION

SECRET_KEY_PRINCIPAL = Principal("acct_1", "key_1", KeyKind.SECRET, False, LATEST_VERSION, False)
"""A secret key of account acct_1, pinned to the latest version, without raw card access."""


async def every_key_is_a_secret_key(key: str) -> Principal | None:
    """A key look-up that takes any key for `SECRET_KEY_PRINCIPAL`."""
    return SECRET_KEY_PRINCIPAL


def faked_dependencies(
    lookup: Lookup | Authenticator,
    *,
    core_channel: object = None,
    accounts: object = None,
    payments: object = None,
    rate_limits: RateLimits | None = None,
) -> Dependencies:
    """What the facade talks to, keys looked up by `lookup` (or by the authenticator given, for
    a test that watches it): the core channel and the accounts and payments stubs given (fakes),
    every other channel and stub None, so a request that reaches one fails. Without
    `rate_limits`, requests are not limited."""
    deps = Dependencies(
        core_channel=cast(Any, core_channel),
        accounts=cast(Any, accounts),
        payments=cast(Any, payments),
        authenticator=lookup if isinstance(lookup, Authenticator) else Authenticator(lookup),
        vault_channel=cast(Any, None),
        vault=cast(Any, None),
        webhooks=cast(Any, None),
        ledger=cast(Any, None),
        radar=cast(Any, None),
    )
    if rate_limits is not None:
        deps.rate_limits = rate_limits
    return deps
