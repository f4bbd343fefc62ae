"""Internal gRPC in plaintext is refused beyond the loopback interface unless mutual TLS is
configured or the operator allows it explicitly."""

from pathlib import Path

import pytest

from remit.config import ConfigError, from_env, is_loopback, target_hosts
from remit.vault.process import VaultSettings
from tests.support.tls import make_tls, tls_env


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, str]:
    """Mutual-TLS settings naming files that are there (they are read at start)."""
    return tls_env(make_tls(tmp_path / "tls"))


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]
)
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.7", "core.internal", "::", "192.168.1.2"])
def test_other_addresses_and_names_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("role", ["CORE", "VAULT", "ACQUIRER"])
def test_an_internal_service_beyond_loopback_without_tls_is_refused(role: str) -> None:
    with pytest.raises(ConfigError, match=r"10\.0\.0\.7") as refused:
        from_env({f"REMIT_{role}_HOST": "10.0.0.7"})
    assert "REMIT_INTERNAL_PLAINTEXT=allow" in str(refused.value)


def test_the_public_rest_facade_may_listen_anywhere() -> None:
    assert from_env({"REMIT_API_HOST": "0.0.0.0"}).api.host == "0.0.0.0"


def test_mutual_tls_lets_the_services_listen_beyond_loopback(tls: dict[str, str]) -> None:
    config = from_env({"REMIT_VAULT_HOST": "10.0.0.7", **tls})
    assert config.vault.host == "10.0.0.7"
    assert config.internal_tls is not None


def test_an_explicit_allowance_lets_plaintext_through_and_reaches_child_processes() -> None:
    config = from_env({"REMIT_CORE_HOST": "core.internal", "REMIT_INTERNAL_PLAINTEXT": "allow"})
    assert config.internal_plaintext_allowed
    assert from_env(config.to_env()) == config


def test_a_vault_destination_beyond_loopback_without_tls_is_refused() -> None:
    config = from_env({"REMIT_DATA_DIR": str(Path("/nonexistent"))})
    with pytest.raises(ConfigError, match=r"203\.0\.113\.9"):
        VaultSettings.from_env({"REMIT_VAULT_DESTINATIONS": "acquirer=203.0.113.9:7423"}, config)
    local = VaultSettings.from_env({"REMIT_VAULT_DESTINATIONS": "acquirer=127.0.0.1:7423"}, config)
    assert dict(local.allowlist) == {"acquirer": "127.0.0.1:7423"}


def test_a_vault_destination_beyond_loopback_is_accepted_with_tls(tls: dict[str, str]) -> None:
    config = from_env(tls)
    settings = VaultSettings.from_env(
        {"REMIT_VAULT_DESTINATIONS": "acquirer=203.0.113.9:7423"}, config
    )
    assert dict(settings.allowlist) == {"acquirer": "203.0.113.9:7423"}


@pytest.mark.parametrize(
    ("target", "hosts"),
    [
        ("127.0.0.1:7423", ["127.0.0.1"]),
        ("acquirer.internal:7423", ["acquirer.internal"]),
        ("[::1]:7423", ["::1"]),
        ("::1", ["::1"]),
        ("dns:///localhost:7423", ["localhost"]),
        ("dns://8.8.8.8/acquirer.internal:7423", ["acquirer.internal"]),
        ("dns:localhost:7423", ["localhost"]),
        ("ipv4:127.0.0.1:7423,10.0.0.7:7423", ["127.0.0.1", "10.0.0.7"]),
        ("ipv6:[::1]:7423", ["::1"]),
        ("unix:/run/remit/acquirer.sock", []),
        ("unix-abstract:acquirer", []),
    ],
)
def test_the_hosts_of_a_grpc_target_are_found_whatever_its_scheme(
    target: str, hosts: list[str]
) -> None:
    assert target_hosts(target) == hosts


def test_vault_destinations_in_grpc_target_forms_on_this_machine_are_accepted() -> None:
    config = from_env({})
    for target in ("dns:///localhost:7423", "ipv4:127.0.0.1:7423", "unix:/run/acquirer.sock"):
        settings = VaultSettings.from_env(
            {"REMIT_VAULT_DESTINATIONS": f"acquirer={target}"}, config
        )
        assert dict(settings.allowlist) == {"acquirer": target}
    with pytest.raises(ConfigError, match=r"acquirer\.internal"):
        VaultSettings.from_env(
            {"REMIT_VAULT_DESTINATIONS": "acquirer=dns:///acquirer.internal:7423"}, config
        )
