"""Create accounts through the real AccountsService of a running platform."""

from dataclasses import dataclass

from remit.config import Endpoint
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.grpcutil.metadata import ACCOUNT_KEY, IDEMPOTENCY_KEY
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc


@dataclass(frozen=True)
class TestAccount:
    __test__ = False

    id: str
    secret_key: str
    publishable_key: str


def create_account(
    core: Endpoint,
    *,
    token: str | None = None,
    access: InternalAccess | None = None,
    raw_card_access: bool = False,
    radar_enabled: bool = True,
) -> TestAccount:
    """`token`: the platform's internal token (`RunningPlatform.internal_token`); `access`, in
    its place, the token and mutual TLS."""
    with internal_sync_channel(core.target, access or InternalAccess(token)) as channel:
        reply = accounts_pb2_grpc.AccountsServiceStub(channel).CreateAccount(
            accounts_pb2.CreateAccountRequest(
                default_currency="usd",
                raw_card_access=raw_card_access,
                radar_enabled=radar_enabled,
            ),
            timeout=10,
        )
    return TestAccount(reply.account.id, reply.secret_key, reply.publishable_key)


def call_metadata(account_id: str, key: str | None = None) -> tuple[tuple[str, str], ...]:
    """The gRPC metadata of a call for `account_id`, with idempotency key `key` if given."""
    values = [(ACCOUNT_KEY, account_id)]
    if key is not None:
        values.append((IDEMPOTENCY_KEY, key))
    return tuple(values)
