"""Asking the accounts service who an API key belongs to, for the facade's authenticator.

The accounts service refuses an unknown key with UNAUTHENTICATED and an `ErrorDetail` (its own
error, with Stripe's fields). The core's credential check answers UNAUTHENTICATED too, but with
no detail, when the facade's own internal credential is missing or wrong, and PERMISSION_DENIED
when its role may not make the call. Those are the platform's faults, not the client's: taken
for an unknown key they would answer every merchant 401 (which the SDKs do not retry) and be
cached as a refusal. They are answered 500 api_error, logged, and never cached.
"""

from __future__ import annotations

import logging

import grpc

from remit.accounts.domain import API_KEY_EXPIRED, MAX_LISTED_KEY_DIGESTS, KeyKind, Principal
from remit.grpcutil.errors import detail_from_rpc_error, remit_error_from_rpc_error
from remit.rest.auth import Lookup, Records
from remit.rest.errors import StripeError
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc

log = logging.getLogger(__name__)

_KIND_FROM_PROTO = {
    accounts_pb2.API_KEY_KIND_SECRET: KeyKind.SECRET,
    accounts_pb2.API_KEY_KIND_PUBLISHABLE: KeyKind.PUBLISHABLE,
}


def api_key_lookup(accounts: accounts_pb2_grpc.AccountsServiceAsyncStub) -> Lookup:
    """The authenticator's lookup: the key's principal, None for a key the accounts service
    does not know, StripeError for an expired one."""

    async def lookup(key: str) -> Principal | None:
        try:
            reply = await accounts.AuthenticateApiKey(
                accounts_pb2.AuthenticateApiKeyRequest(key=key), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            if not _refused_by_accounts_service(error):
                if error.code() in (
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                ):
                    # The status message names the role or the missing credential, never a key.
                    log.error(
                        "the accounts service refused the facade itself (%s): %s",
                        error.code().name,
                        error.details(),
                    )
                    raise StripeError.api_error() from None
                raise remit_error_from_rpc_error(error) from None
            if remit_error_from_rpc_error(error).code == API_KEY_EXPIRED:
                raise StripeError.expired_api_key(key) from None
            return None
        return Principal(
            account_id=reply.account_id,
            key_id=reply.key_id,
            key_kind=_KIND_FROM_PROTO[reply.key_kind],
            livemode=reply.livemode,
            api_version=reply.api_version if reply.HasField("api_version") else None,
            raw_card_access=reply.raw_card_access,
        )

    return lookup


def _refused_by_accounts_service(error: grpc.aio.AioRpcError) -> bool:
    """Whether `error` is the accounts service's own refusal of the key: UNAUTHENTICATED with
    its error detail (the credential check sends none)."""
    return (
        error.code() == grpc.StatusCode.UNAUTHENTICATED and detail_from_rpc_error(error) is not None
    )


def key_digests_on_record(accounts: accounts_pb2_grpc.AccountsServiceAsyncStub) -> Records:
    """The authenticator's `records`: the digests of the keys that work, as many as one answer
    holds (the latest made first). ListKeyDigests has no cursor to page on: when more keys work
    than one answer holds, the oldest are left out (a quiet merchant's, most likely), and each
    such reading logs a warning saying so."""

    async def read() -> frozenset[bytes]:
        reply = await accounts.ListKeyDigests(
            accounts_pb2.ListKeyDigestsRequest(limit=MAX_LISTED_KEY_DIGESTS), timeout=10
        )
        if reply.has_more:
            log.warning(
                "more than %d API keys work: only the newest %d are on record for letting a "
                "key through from an address out of failed authentications; keys older than "
                "those are not known to that bypass and may be held back there",
                len(reply.digests),
                len(reply.digests),
            )
        return frozenset(reply.digests)

    return read
