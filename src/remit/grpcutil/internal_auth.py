"""The internal token: only remit's own processes may call the core, the vault and the acquirer.

The gRPC services trust what a call says (the core takes the account from its metadata, the
vault forwards card data for the account a request names), so a call must first show a
credential of the platform. Its root is the platform's internal token, a shared secret
(`REMIT_INTERNAL_TOKEN`, or the file `remit serve` keeps in its data directory); each kind of
process shows a credential of its own role derived from it (`internal_roles`), and may call
only what that role needs (`role_permissions`). Servers refuse a call without a credential
(UNAUTHENTICATED) or outside its role (PERMISSION_DENIED, naming both) before any handler
runs; health checks stay open so that supervisors and load balancers can probe. Clients attach
theirs with `internal_channel`.

Across hosts the processes can also speak mutual TLS (`InternalTls`, from
`REMIT_INTERNAL_TLS_CERT`, `_KEY` and `_CA`): servers then accept only peers whose certificates
the platform's CA signed, and the credential travels encrypted. The processes share one
certificate, so the role always comes from the credential. `InternalAccess` is both together.

A process with no token configured refuses to start (`InternalAccess.of`): a service that checks
no token answers anyone who reaches its port, for any account. Only with REMIT_INTERNAL_AUTH=off,
for development, does it run without one, neither checking nor sending a token, and says so in
its log. A test's in-process server, given no platform config, checks none.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from remit.config import (
    INTERNAL_AUTH_ENV,
    TOKEN_ENV,
    TOKEN_FILE,
    ConfigError,
    InternalTls,
    PlatformConfig,
)
from remit.grpcutil.caller_role import serving_as
from remit.grpcutil.internal_roles import ROLES, RoleVerifier
from remit.grpcutil.role_permissions import may_call
from remit.grpcutil.wrapped_handlers import WrappedHandlers

log = logging.getLogger(__name__)

TOKEN_METADATA_KEY = "remit-internal-token"  # noqa: S105 (a metadata key, not a secret)
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


def new_token() -> str:
    """A fresh token: 256 bits from the OS CSPRNG."""
    return secrets.token_urlsafe(32)


def token_in(data_dir: Path) -> str:
    """The token kept in `data_dir`, made (readable by its owner only) if there is none, so
    that commands run later against the same platform find it."""
    path = data_dir / TOKEN_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token()
    # Written whole to a file of this process's own, then linked into place: the link either
    # appears with the complete token or fails because another process's token got there
    # first, and then that one stands. A reader never sees a half-written file.
    draft = data_dir / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(8)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    try:
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        draft.unlink()
    return token


def _presented(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == TOKEN_METADATA_KEY:
            return value if isinstance(value, str) else value.decode(errors="replace")
    return None


class InternalTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every call (but health checks) that does not carry a credential of one of the
    platform's roles (UNAUTHENTICATED), or that its role may not make (PERMISSION_DENIED,
    `role_permissions`). A call let through is served under its role (`caller_role`)."""

    def __init__(self, token: str) -> None:
        self._roles = RoleVerifier(token)
        self._served_as = {role: WrappedHandlers(_serving(role)) for role in ROLES}
        # A refusal's handler has the shape of the method it stands in for; made once each.
        self._refusals: dict[tuple[str, str | None], Handler] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        method = handler_call_details.method
        if method.startswith(_OPEN_PREFIXES):
            return await continuation(handler_call_details)
        role = self._roles.role_of(_presented(handler_call_details.invocation_metadata))
        if role is not None and may_call(role, method):
            handler = await continuation(handler_call_details)
            return None if handler is None else self._served_as[role].of(handler)
        if role is not None:
            log.warning("refused %s to a caller of the %s role", method, role)
        refusal = self._refusals.get((method, role))
        if refusal is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            refusal = _refusal_like(
                handler, _refuse_unknown if role is None else _denial(method, role)
            )
            self._refusals[(method, role)] = refusal
        return refusal


def _serving(role: str) -> Callable[[Handler], Handler]:
    return lambda handler: serving_as(role, handler)


Refuse: TypeAlias = "Callable[[object, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]"


async def _refuse_unknown(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "This service only answers remit's own processes: the internal token is missing or wrong.",
    )


def _denial(method: str, role: str) -> Refuse:
    message = (
        f"The {role} role may not call {method}: remit's processes may call only what their "
        "own work needs (remit.grpcutil.role_permissions)."
    )

    async def refuse(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, message)

    return refuse


def _refusal_like(handler: Handler, refuse: Refuse) -> Handler:
    """A handler of `handler`'s shape that refuses the call with `refuse` (the request is not
    decoded)."""

    async def refuse_stream(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await refuse(request, context)
        yield  # pragma: no cover - abort raises first; the yield makes this a stream handler

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.stream_stream_rpc_method_handler(refuse_stream)


def server_interceptors(token: str | None) -> list[grpc.aio.ServerInterceptor]:
    """What a remit gRPC server puts first: the credential check, when the platform token is
    configured."""
    return [] if token is None else [InternalTokenInterceptor(token)]


def _with_token(metadata: Any, token: str) -> list[tuple[str, str | bytes]]:
    return [*(metadata or ()), (TOKEN_METADATA_KEY, token)]


def _with_token_aio(metadata: grpc.aio.Metadata | None, token: str) -> grpc.aio.Metadata:
    # grpc.aio's intercepted streaming calls expect its own Metadata type.
    extended = grpc.aio.Metadata(*(metadata or ()))
    extended.add(TOKEN_METADATA_KEY, token)
    return extended


class _UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(
            details._replace(metadata=_with_token_aio(details.metadata, self._token)), request
        )


class _StreamToken(grpc.aio.UnaryStreamClientInterceptor):
    # A separate class: grpc.aio files an interceptor under the first kind it implements only.
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(
            details._replace(metadata=_with_token_aio(details.metadata, self._token)), request
        )


class _StreamUnaryToken(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(
            details._replace(metadata=_with_token_aio(details.metadata, self._token)),
            request_iterator,
        )


class _StreamStreamToken(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(
            details._replace(metadata=_with_token_aio(details.metadata, self._token)),
            request_iterator,
        )


def _aio_token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """The token on calls of every shape: one interceptor per shape (see `_StreamToken`)."""
    return [
        _UnaryToken(token),
        _StreamToken(token),
        _StreamUnaryToken(token),
        _StreamStreamToken(token),
    ]


class _SyncToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """The token on a blocking channel's calls of every shape (unlike grpc.aio's, grpc's
    channel gives one interceptor every kind it implements)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=_with_token(details.metadata, self._token))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(details), request_iterator)


def _server_credentials(tls: InternalTls) -> grpc.ServerCredentials:
    # Mutual: a caller without a certificate the platform's CA signed is turned away.
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.ca.read_bytes(),
        require_client_auth=True,
    )


def _channel_credentials(tls: InternalTls) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.ca.read_bytes(),
        private_key=tls.key.read_bytes(),
        certificate_chain=tls.cert.read_bytes(),
    )


# A remit server's refusal travels in the trailing metadata of its reply: its message twice
# (grpc-message, and the rich status, which also embeds the object the refusal is about, such
# as a declined payment's PaymentIntent with 50 metadata values of 500 characters). gRPC's
# default limits on what a client receives (8 KiB, past which calls fail at random, and 16 KiB,
# past which every call does) are below what such a refusal holds: the caller would see
# RESOURCE_EXHAUSTED (and the facade's client a 500, or a 429) in place of the refusal. So every
# remit caller accepts as much as one can hold.
MAX_REPLY_METADATA_BYTES = 1024 * 1024
_REPLY_METADATA_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_metadata_size", MAX_REPLY_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_REPLY_METADATA_BYTES),
]


def _channel_options(tls: InternalTls | None) -> list[tuple[str, Any]]:
    if tls is None or tls.server_name is None:
        return list(_REPLY_METADATA_OPTIONS)
    return [*_REPLY_METADATA_OPTIONS, ("grpc.ssl_target_name_override", tls.server_name)]


@dataclass(frozen=True)
class InternalAccess:
    """How remit's processes reach each other: the credential every call shows (a role's, or
    the platform token itself), and mutual TLS when configured (plaintext otherwise)."""

    token: str | None = None
    tls: InternalTls | None = None

    @classmethod
    def of(cls, config: PlatformConfig) -> InternalAccess:
        """How a process of `config` calls the others: with the credential of the role it acts
        as (`PlatformConfig.acting_as`). A process with neither the platform token nor a
        credential is refused (ConfigError) unless internal authentication is explicitly off."""
        if config.internal_token is None and config.internal_credential is None:
            if not config.internal_auth_off:
                raise ConfigError(
                    "no internal token is configured: remit's gRPC services would answer "
                    f"anyone who reaches their ports. Set {TOKEN_ENV} (the same secret for "
                    f"every process), or start the platform with `remit serve`, which makes "
                    f"one in the data directory ({config.data_dir / TOKEN_FILE}). For "
                    f"development only, {INTERNAL_AUTH_ENV}=off runs without one."
                )
            log.warning(
                "INTERNAL AUTHENTICATION IS OFF (%s=off): remit's gRPC services answer anyone "
                "who reaches their ports, for any account. Never run so outside development.",
                INTERNAL_AUTH_ENV,
            )
        return cls(config.internal_credential, config.internal_tls)


def internal_channel(
    target: str, access: InternalAccess, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to a remit service that shows the token on every call (over mutual
    TLS when it is configured)."""
    token = access.token
    interceptors = None if token is None else _aio_token_interceptors(token)
    if access.tls is None:
        return grpc.aio.insecure_channel(
            target, options=[*options, *_channel_options(None)], interceptors=interceptors
        )
    return grpc.aio.secure_channel(
        target,
        _channel_credentials(access.tls),
        options=[*options, *_channel_options(access.tls)],
        interceptors=interceptors,
    )


def internal_sync_channel(target: str, access: InternalAccess) -> grpc.Channel:
    """A blocking channel to a remit service that shows the token on every call (over mutual
    TLS when it is configured)."""
    if access.tls is None:
        channel = grpc.insecure_channel(target, options=_channel_options(None))
    else:
        channel = grpc.secure_channel(
            target, _channel_credentials(access.tls), options=_channel_options(access.tls)
        )
    token = access.token
    return channel if token is None else grpc.intercept_channel(channel, _SyncToken(token))


def add_internal_port(server: grpc.aio.Server, target: str, access: InternalAccess) -> int:
    """Listen on `target`, over mutual TLS when it is configured; returns the port (0: not
    bound)."""
    if access.tls is None:
        return server.add_insecure_port(target)
    return server.add_secure_port(target, _server_credentials(access.tls))
