"""The REST facade with its gRPC side faked, for tests whose requests stop short of the services
(or reach only the fakes they are given)."""

from typing import Any, cast

from remit.accounts.domain import KeyKind, Principal
from remit.rest.auth import Authenticator, Lookup
from remit.rest.dependencies import Dependencies
from versions import LATEST_VERSION

SECRET_KEY_PRINCIPAL = Principal("acct_1", "key_1", KeyKind.SECRET, False, LATEST_VERSION, False)
"""A secret key of account acct_1, pinned to the latest version, without raw card access."""


async def every_key_is_a_secret_key(key: str) -> Principal | None:
    """A key look-up that takes any key for `SECRET_KEY_PRINCIPAL`."""
    return SECRET_KEY_PRINCIPAL


def faked_dependencies(
    lookup: Lookup, *, accounts: object = None, payments: object = None
) -> Dependencies:
    """What the facade talks to, keys looked up by `lookup`: the accounts and payments stubs
    given (fakes), every other channel and stub None, so a request that reaches one fails."""
    return Dependencies(
        core_channel=cast(Any, None),
        accounts=cast(Any, accounts),
        payments=cast(Any, payments),
        authenticator=Authenticator(lookup),
        vault_channel=cast(Any, None),
        vault=cast(Any, None),
        webhooks=cast(Any, None),
        ledger=cast(Any, None),
        radar=cast(Any, None),
    )
