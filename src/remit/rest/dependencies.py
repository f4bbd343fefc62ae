"""What the REST facade talks to: gRPC channels and stubs, the authenticator, API versions."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from remit.accounts.domain import Principal
from remit.config import PlatformConfig, client_rate_limit_per_s, rate_limit_per_s
from remit.grpcutil.errors import remit_error_from_rpc_error
from remit.grpcutil.facade_limits import FACADE_RECEIVE_BYTES
from remit.grpcutil.internal_auth import InternalAccess, internal_channel
from remit.rest.auth import Authenticator
from remit.rest.errors import StripeError
from remit.rest.key_lookup import api_key_lookup, key_digests_on_record
from remit.rest.rate_limits import RateLimits
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.ledger.v1 import ledger_pb2_grpc
from remit_api.payments.v1 import payments_pb2_grpc
from remit_api.radar.v1 import radar_pb2_grpc
from remit_api.vault.v1 import vault_pb2_grpc
from remit_api.webhooks.v1 import webhooks_pb2_grpc
from versions import KNOWN_VERSIONS, LATEST_VERSION

_KNOWN = frozenset(KNOWN_VERSIONS)

# The first request of an account pins its API version in the core: a one-row write.
PIN_TIMEOUT_S = 10.0

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", FACADE_RECEIVE_BYTES),
]


@dataclass(frozen=True)
class Versions:
    request: str
    """What this request renders at: its `Stripe-Version`, else the account's."""
    account: str
    """The account's pinned version (what events render at, whatever the request asks)."""


@dataclass
class Dependencies:
    core_channel: grpc.aio.Channel
    accounts: accounts_pb2_grpc.AccountsServiceAsyncStub
    payments: payments_pb2_grpc.PaymentsServiceAsyncStub
    webhooks: webhooks_pb2_grpc.WebhooksServiceAsyncStub
    ledger: ledger_pb2_grpc.LedgerServiceAsyncStub
    authenticator: Authenticator
    radar: radar_pb2_grpc.RadarServiceAsyncStub
    # Raw card numbers go from the facade straight to the vault, never through the core.
    vault_channel: grpc.aio.Channel
    vault: vault_pb2_grpc.VaultServiceAsyncStub
    rate_limits: RateLimits = field(default_factory=lambda: RateLimits.of(0, 0))

    async def resolve_version(self, principal: Principal, requested: str | None) -> Versions:
        """The version this request renders at, and the account's own; pins the account on its
        first request."""
        if requested is not None and requested not in _KNOWN:
            raise StripeError.unknown_api_version(requested, KNOWN_VERSIONS)
        pinned = principal.api_version
        if pinned is None:
            pinned = await self._pin(principal)
        return Versions(request=requested or pinned, account=pinned)

    async def _pin(self, principal: Principal) -> str:
        try:
            reply = await self.accounts.PinApiVersion(
                accounts_pb2.PinApiVersionRequest(
                    account_id=principal.account_id, api_version=LATEST_VERSION
                ),
                # Without a deadline, a core that never answers holds the request (and the
                # client) for ever; past it, the client is told to retry (503).
                timeout=PIN_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as error:
            raise remit_error_from_rpc_error(error) from None
        self.authenticator.forget(principal)
        return str(reply.api_version)

    async def close(self) -> None:
        await self.core_channel.close()
        await self.vault_channel.close()


async def connect_dependencies(config: PlatformConfig) -> Dependencies:
    # With several core processes the channel holds a connection to each and takes turns.
    access = InternalAccess.of(config)
    core_options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if config.core_instance_ports:
        core_options = [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")]
    channel = internal_channel(config.core_balanced_target(), access, core_options)
    accounts = accounts_pb2_grpc.AccountsServiceStub(channel)

    vault_channel = internal_channel(config.vault.target, access, CHANNEL_OPTIONS)
    return Dependencies(
        core_channel=channel,
        accounts=accounts,
        payments=payments_pb2_grpc.PaymentsServiceStub(channel),
        webhooks=webhooks_pb2_grpc.WebhooksServiceStub(channel),
        ledger=ledger_pb2_grpc.LedgerServiceStub(channel),
        authenticator=Authenticator(
            api_key_lookup(accounts), records=key_digests_on_record(accounts)
        ),
        radar=radar_pb2_grpc.RadarServiceStub(channel),
        vault_channel=vault_channel,
        vault=vault_pb2_grpc.VaultServiceStub(vault_channel),
        rate_limits=RateLimits.of(
            rate_limit_per_s("reads"), rate_limit_per_s("writes"), client_rate_limit_per_s()
        ),
    )
