"""Who a call is for: the account, request id, API version and idempotency key travel in
gRPC metadata, set by the REST facade or any internal caller."""

from dataclasses import dataclass
from typing import Any

import grpc

from remit.core.errors import ErrorKind, RemitError
from remit.core.ids import MAX_RANDOM_LENGTH, has_prefix, is_well_formed_id

ACCOUNT_KEY = "remit-account-id"
REQUEST_ID_KEY = "remit-request-id"
API_VERSION_KEY = "remit-api-version"
IDEMPOTENCY_KEY = "idempotency-key"
# Set by the REST facade on a call made with a publishable key: such a caller's idempotency
# keys live apart from the secret key's (see `remit.payments.keyed_rpc.keyed_call`).
KEY_KIND_KEY = "remit-key-kind"
PUBLISHABLE_KEY_KIND = "publishable"
# The key_ id (never the secret) of the API key a caller authenticated with, set by the REST
# facade and the command line: Radar's history records who changed a rule or a list with it.
KEY_ID_KEY = "remit-key-id"
# Set by the REST facade: the URL path of the HTTP request a call serves (`/v1/refunds`,
# `/v1/payment_intents/pi_123/confirm`), which the idempotency layer keeps with a key so that a
# key reused elsewhere is refused naming the paths, as Stripe names them, not remit's RPCs.
REQUEST_PATH_KEY = "remit-request-path"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# A request id is stored with the key and the events a call makes, and shown back in
# `event.request.id`: held to a key's bounds, and to printable ASCII, which is all that gRPC
# metadata may carry as text. The facade's ids (`req_...`) are far inside them.
MAX_REQUEST_ID_LENGTH = 255
# Trailing metadata of an answer replayed for a retry under an idempotency key.
REPLAYED_KEY = "idempotent-replayed"


@dataclass(frozen=True)
class CallContext:
    account_id: str
    request_id: str | None
    api_version: str | None
    idempotency_key: str | None
    # Whether the caller holds only the account's publishable key, which is public.
    publishable: bool = False
    # The key_ id of the caller's API key, when it named one.
    key_id: str | None = None
    # The REST request's URL path; None for a call no HTTP request made.
    request_path: str | None = None


def call_context(context: grpc.aio.ServicerContext[Any, Any]) -> CallContext:
    values = {key: value for key, value in context.invocation_metadata() or ()}
    account_id = values.get(ACCOUNT_KEY)
    # The caller's credential (the internal token) was checked before and passed: what is
    # wrong is the request, so not UNAUTHENTICATED, which would send the caller to check a
    # token that is fine.
    if not isinstance(account_id, str) or not account_id:
        raise _account_refusal(f"Every call needs the {ACCOUNT_KEY} metadata naming an account.")
    if not is_well_formed_id(account_id, "acct"):
        # Refused here, before any query: an id no account could have (a NUL, which PostgreSQL
        # refuses in a query; any length) is the caller's mistake, never the database's. Not
        # echoed, as it may be any text.
        raise _account_refusal(
            f"The {ACCOUNT_KEY} metadata must be an account id: acct_ followed by at most "
            f"{MAX_RANDOM_LENGTH} letters and digits."
        )
    _refuse_malformed_request_id(values.get(REQUEST_ID_KEY))
    return CallContext(
        account_id=account_id,
        request_id=_text(values, REQUEST_ID_KEY),
        api_version=_text(values, API_VERSION_KEY),
        idempotency_key=_idempotency_key(values),
        publishable=values.get(KEY_KIND_KEY) == PUBLISHABLE_KEY_KIND,
        key_id=_key_id(values),
        request_path=_text(values, REQUEST_PATH_KEY),
    )


def _account_refusal(message: str) -> RemitError:
    return RemitError(message=message, kind=ErrorKind.INVALID_ARGUMENT, param=ACCOUNT_KEY)


def idempotency_key_of(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The call's idempotency key, if it sent one; for the admin calls, which name no account
    in their metadata (`call_context` is for the per-account services)."""
    return _idempotency_key({key: value for key, value in context.invocation_metadata() or ()})


def _text(values: dict[str, str | bytes], name: str) -> str | None:
    value = values.get(name)
    return value if isinstance(value, str) and value else None


def _key_id(values: dict[str, str | bytes]) -> str | None:
    key_id = _text(values, KEY_ID_KEY)
    return key_id if key_id is not None and has_prefix(key_id, "key") else None


def _idempotency_key(values: dict[str, str | bytes]) -> str | None:
    key = _text(values, IDEMPOTENCY_KEY)
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise RemitError(
            message=f"Idempotency keys can be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            param="Idempotency-Key",
        )
    return key


def _refuse_malformed_request_id(request_id: object) -> None:
    if not isinstance(request_id, str):
        return
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        raise RemitError(
            message=f"The {REQUEST_ID_KEY} metadata can be at most {MAX_REQUEST_ID_LENGTH} "
            f"characters; it has {len(request_id)}.",
            param=REQUEST_ID_KEY,
        )
    if not (request_id.isascii() and request_id.isprintable()):
        raise RemitError(
            message=f"The {REQUEST_ID_KEY} metadata must be printable ASCII characters.",
            param=REQUEST_ID_KEY,
        )
