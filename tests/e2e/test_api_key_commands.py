"""`remit accounts keys list|create|revoke|roll` against a running platform."""

import subprocess
import sys

import grpc
import pytest
import stripe

from remit.grpcutil.internal_auth import internal_sync_channel
from remit_api.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from tests.support.accounts import TestAccount
from tests.support.platform import RunningPlatform


def _keys(platform: RunningPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    # The command finds the platform token in the data directory, as an operator's would.
    return subprocess.run(
        [sys.executable, "-m", "remit", "accounts", "keys", *args],
        env=platform.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _printed_key(output: str, kind: str = "secret") -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"new {kind} key")]
    assert len(lines) == 1, output
    return lines[0].split()[-1]


def _key_id(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith("key id"))


def _authenticates(platform: RunningPlatform, key: str) -> bool:
    """Asked of the core directly: the facade caches a key's look-up for a few seconds."""
    with internal_sync_channel(platform.core.target, platform.internal_access) as channel:
        try:
            accounts_pb2_grpc.AccountsServiceStub(channel).AuthenticateApiKey(
                accounts_pb2.AuthenticateApiKeyRequest(key=key), timeout=10
            )
        except grpc.RpcError as error:
            refused: grpc.StatusCode = error.code()
        else:
            return True
    if refused is not grpc.StatusCode.UNAUTHENTICATED:
        raise AssertionError(f"authenticating failed with {refused}, not UNAUTHENTICATED")
    return False


def test_create_prints_a_working_key_once_and_list_never_shows_it(
    platform: RunningPlatform, account: TestAccount
) -> None:
    made = _keys(platform, "create", account.id)
    assert made.returncode == 0, made.stderr
    key = _printed_key(made.stdout)
    assert key.startswith("sk_test_")
    assert "only time it is shown" in made.stdout
    client = stripe.StripeClient(
        key, base_addresses={"api": platform.api_base}, max_network_retries=0
    )
    assert client.v1.payment_intents.list().data == []
    publishable = _keys(platform, "create", account.id, "--publishable")
    assert _printed_key(publishable.stdout, "publishable").startswith("pk_test_")

    listed = _keys(platform, "list", account.id)
    assert listed.returncode == 0, listed.stderr
    assert _key_id(made.stdout) in listed.stdout
    assert f"sk_test_...{key[-4:]}" in listed.stdout
    assert len(listed.stdout.splitlines()) == 4  # the account's two keys, and the two made
    for plaintext in (key, account.secret_key, account.publishable_key):
        assert plaintext not in listed.stdout


def test_revoke_stops_a_key_but_not_the_last_secret_one_unless_forced(
    platform: RunningPlatform, account: TestAccount
) -> None:
    made = _keys(platform, "create", account.id)
    extra, extra_id = _printed_key(made.stdout), _key_id(made.stdout)
    revoked = _keys(platform, "revoke", account.id, extra_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    assert not _authenticates(platform, extra)

    listed = _keys(platform, "list", account.id)
    assert extra_id not in listed.stdout
    assert extra_id in _keys(platform, "list", account.id, "--all").stdout
    original_id = next(line.split()[0] for line in listed.stdout.splitlines() if "sk_test_" in line)
    refused = _keys(platform, "revoke", account.id, original_id)
    assert refused.returncode == 2
    assert "last secret key" in refused.stderr
    assert "--force" in refused.stderr
    assert _authenticates(platform, account.secret_key)
    forced = _keys(platform, "revoke", account.id, original_id, "--force")
    assert forced.returncode == 0, forced.stderr
    assert not _authenticates(platform, account.secret_key)
    again = _keys(platform, "revoke", account.id, original_id)
    assert again.returncode == 2
    assert "no working key" in again.stderr


def test_roll_makes_a_new_key_and_the_old_one_works_until_its_end(
    platform: RunningPlatform, account: TestAccount
) -> None:
    rolled = _keys(platform, "roll", account.id)
    assert rolled.returncode == 0, rolled.stderr
    new = _printed_key(rolled.stdout)
    assert "keeps working until" in rolled.stdout
    assert _authenticates(platform, new)
    assert _authenticates(platform, account.secret_key)  # for 24 hours
    listed = _keys(platform, "list", account.id).stdout
    assert "active until" in listed

    # Two secret keys with no end now (the new one, and one made): roll needs telling which.
    made = _keys(platform, "create", account.id)
    ambiguous = _keys(platform, "roll", account.id)
    assert ambiguous.returncode == 2
    assert "--key" in ambiguous.stderr
    at_once = _keys(
        platform, "roll", account.id, "--key", _key_id(made.stdout), "--expire-old-after", "0"
    )
    assert at_once.returncode == 0, at_once.stderr
    assert not _authenticates(platform, _printed_key(made.stdout))
    assert _authenticates(platform, _printed_key(at_once.stdout))


@pytest.mark.parametrize("hours", ["169", "-1"])
def test_roll_refuses_an_expiry_beyond_a_week_and_keeps_the_old_key(
    platform: RunningPlatform, account: TestAccount, hours: str
) -> None:
    rolled = _keys(platform, "roll", account.id, "--expire-old-after", hours)
    assert rolled.returncode == 2
    assert "--expire-old-after must be between 0 and 168 hours" in rolled.stderr
    assert "new secret key" not in rolled.stdout
    assert _authenticates(platform, account.secret_key)
    assert "active until" not in _keys(platform, "list", account.id).stdout
