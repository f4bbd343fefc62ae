"""`remit serve` guards its gRPC services with the internal token: callers outside the platform
are refused, its own processes (and its commands) are answered."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import stripe
from grpc_health.v1 import health_pb2, health_pb2_grpc

from remit.config import Endpoint
from remit.grpcutil.internal_auth import InternalAccess, internal_sync_channel
from remit.grpcutil.internal_roles import role_credential
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from remit_api.acquirer.v1 import acquirer_pb2, acquirer_pb2_grpc
from remit_api.vault.v1 import vault_pb2, vault_pb2_grpc
from tests.support.accounts import TestAccount, create_account
from tests.support.platform import RunningPlatform, children_by_role, running_platform
from tests.support.postgres import WorkerDatabases
from tests.support.tls import make_tls, tls_env


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


def test_the_facade_holds_only_its_roles_credential_which_is_refused_admin_calls(
    platform: RunningPlatform, account: TestAccount
) -> None:
    """A facade taken over gets no further than its own calls: no API keys, no vault keys."""
    children = children_by_role(platform.process.pid)
    api_env = children["api"].environ()
    assert "REMIT_INTERNAL_TOKEN" not in api_env
    assert "REMIT_INTERNAL_TOKEN" not in children["worker"].environ()
    credential = api_env["REMIT_INTERNAL_CREDENTIAL"]
    assert credential.startswith("api.")
    api = InternalAccess(credential)
    with internal_sync_channel(platform.core.target, api) as core:
        create_key = accounts_pb2_grpc.AccountsServiceStub(core).CreateApiKey
        request = accounts_pb2.CreateApiKeyRequest(
            account_id=account.id, kind=accounts_pb2.API_KEY_KIND_SECRET
        )
        with pytest.raises(grpc.RpcError) as refused_key:
            create_key(request, timeout=10)
    with internal_sync_channel(platform.vault.target, api) as vault:
        remove = vault_pb2_grpc.VaultServiceStub(vault).RemoveKeyVersion
        with pytest.raises(grpc.RpcError) as refused_vault:
            remove(vault_pb2.RemoveKeyVersionRequest(version=1, requester="api"), timeout=10)
    for refused, method in (
        (refused_key, "AccountsService/CreateApiKey"),
        (refused_vault, "VaultService/RemoveKeyVersion"),
    ):
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        details = refused.value.details() or ""
        assert method in details
        assert "api role" in details
    # The CLI's admin credential, derived from the platform token, may.
    assert platform.internal_token is not None
    admin = InternalAccess(role_credential(platform.internal_token, "admin"))
    with internal_sync_channel(platform.core.target, admin) as core:
        made = accounts_pb2_grpc.AccountsServiceStub(core).CreateApiKey(request, timeout=10)
    assert made.plaintext_key.startswith("sk_test_")
    assert "refused /remit_api.accounts.v1.AccountsService/CreateApiKey" in platform.log_text()


def test_each_process_holds_only_its_own_database_url_and_the_platform_still_pays(
    platform: RunningPlatform, client: stripe.StripeClient
) -> None:
    """The api, taken over, holds no database password; each other process only its own."""
    databases = {"DATABASE_URL", "VAULT_DATABASE_URL", "ACQUIRER_DATABASE_URL"}
    children = children_by_role(platform.process.pid)
    held = {role: databases & set(child.environ()) for role, child in children.items()}
    assert held == {
        "api": set(),
        "core": {"DATABASE_URL"},
        "worker": {"DATABASE_URL"},
        "vault": {"VAULT_DATABASE_URL"},
        "acquirer": {"ACQUIRER_DATABASE_URL"},
    }
    # Every process still does its part of a payment, and of its refund.
    paid = client.v1.payment_intents.create(
        params={"amount": 1200, "currency": "usd", "payment_method": "pm_card_visa",
                "confirm": True, "return_url": "https://shop.example/r"}
    )  # fmt: skip
    assert paid.status == "succeeded"
    refund = client.v1.refunds.create(params={"payment_intent": paid.id})
    assert refund.status == "succeeded"


# Beside the module's platform, on its databases, as a second installation of the same
# platform would run (tests/e2e/conftest.py refuses a test on the databases without it).
@pytest.mark.usefixtures("platform")
def test_a_platform_over_mutual_tls_pays_and_refuses_plaintext(
    databases: WorkerDatabases, tmp_path: Path
) -> None:
    """With REMIT_INTERNAL_TLS_*, every hop (api -> core, core -> vault, vault -> acquirer, the
    supervisor's health checks, the CLI) speaks mutual TLS, and a plaintext caller gets
    nowhere."""
    tls = make_tls(tmp_path / "tls")
    with running_platform(databases, **tls_env(tls)) as platform:
        account = create_account(platform.core, access=InternalAccess(platform.internal_token, tls))
        client = stripe.StripeClient(
            account.secret_key, base_addresses={"api": platform.api_base}, max_network_retries=0
        )
        paid = client.v1.payment_intents.create(
            params={"amount": 1100, "currency": "usd", "payment_method": "pm_card_visa",
                    "confirm": True, "return_url": "https://shop.example/r"}
        )  # fmt: skip
        assert paid.status == "succeeded"
        with grpc.insecure_channel(platform.core.target) as plaintext:
            check = health_pb2_grpc.HealthStub(plaintext).Check
            assert (
                _refused(lambda: check(health_pb2.HealthCheckRequest(), timeout=30))
                is grpc.StatusCode.UNAVAILABLE
            )
        listed = subprocess.run(
            [sys.executable, "-m", "remit", "radar", "rules", "list", "--api-key",
             account.secret_key],
            env=platform.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("role", ["core", "vault", "acquirer", "api", "worker"])
def test_a_process_started_alone_without_a_token_refuses_to_start(
    role: str, tmp_path: Path
) -> None:
    """It would answer anyone who reaches its port, for any account: it says why and stops
    before listening or connecting to anything."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REMIT_")}
    env["REMIT_DATA_DIR"] = str(tmp_path)  # holds no token file
    started = subprocess.run(
        [sys.executable, "-m", "remit", role],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 2
    assert "no internal token is configured" in started.stderr
    assert "REMIT_INTERNAL_TOKEN" in started.stderr
    assert "REMIT_INTERNAL_AUTH=off" in started.stderr


def test_a_command_without_a_token_says_why_it_cannot_call_the_platform(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("REMIT_")}
    env["REMIT_DATA_DIR"] = str(tmp_path)
    listed = subprocess.run(
        [sys.executable, "-m", "remit", "radar", "rules", "list", "--api-key", "sk_test_x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 2
    assert "no internal token is configured" in listed.stderr
    assert "Traceback" not in listed.stderr
