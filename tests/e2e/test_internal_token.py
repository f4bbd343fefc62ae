"""`remit serve` guards its gRPC services with the internal token: callers outside the platform
are refused, its own processes (and its commands) are answered."""

import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest
import stripe
from grpc_health.v1 import health_pb2, health_pb2_grpc

from remit.config import Endpoint
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _refused(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    code: grpc.StatusCode = refused.value.code()
    return code


def test_calls_from_outside_the_platform_are_refused_on_every_service(
    platform: RunningPlatform, account: TestAccount
) -> None:
    with grpc.insecure_channel(platform.core.target) as core:
        create = accounts_pb2_grpc.AccountsServiceStub(core).CreateAccount
        assert (
            _refused(
                lambda: create(
                    accounts_pb2.CreateAccountRequest(default_currency="usd"), timeout=10
                )
            )
            is grpc.StatusCode.UNAUTHENTICATED
        )
    with grpc.insecure_channel(platform.vault.target) as vault:
        forward = vault_pb2_grpc.VaultServiceStub(vault).ForwardAuthorization
        request = vault_pb2.ForwardAuthorizationRequest(
            account_id=account.id, vault_token="vtok_x", destination="acquirer", amount=100,
            currency="usd", reference="outside-1", purpose="test", requester="outside",
        )  # fmt: skip
        assert _refused(lambda: forward(request, timeout=10)) is grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(platform.acquirer.target) as acquirer:
        lookup = acquirer_pb2_grpc.AcquirerServiceStub(acquirer).LookupOperation
        assert (
            _refused(lambda: lookup(acquirer_pb2.LookupOperationRequest(reference="x"), timeout=10))
            is grpc.StatusCode.UNAUTHENTICATED
        )


@pytest.mark.parametrize("role", ["core", "vault", "acquirer"])
def test_health_checks_stay_open(platform: RunningPlatform, role: str) -> None:
    endpoint: Endpoint = getattr(platform, role)
    with grpc.insecure_channel(endpoint.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_platform_and_its_commands_are_answered(
    platform: RunningPlatform, client: stripe.StripeClient, account: TestAccount
) -> None:
    # The api, the core, the vault and the acquirer all showed the token on the way.
    paid = client.v1.payment_intents.create(
        params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa",
                "confirm": True, "return_url": "https://shop.example/r"}
    )  # fmt: skip
    assert paid.status == "succeeded"
    # A command run later finds the token in the data directory (it is not in its env).
    env = {key: value for key, value in platform.env.items() if key != "REMIT_INTERNAL_TOKEN"}
    listed = subprocess.run(
        [sys.executable, "-m", "remit", "radar", "rules", "list", "--api-key",
         account.secret_key],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    status = subprocess.run(
        [sys.executable, "-m", "remit", "vault", "key-status"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert platform.internal_token is not None
    assert platform.internal_token not in platform.log_text()
