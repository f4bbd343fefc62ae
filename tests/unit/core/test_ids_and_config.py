import ipaddress
import secrets
import socket
from collections.abc import Callable
from typing import NoReturn

import pytest

from remit.config import (
    ConfigError,
    Endpoint,
    api_max_connections,
    api_max_in_flight,
    api_read_timeout_s,
    core_instances_target,
    database_pool_timeout_s,
    from_env,
    grpc_max_concurrent_rpcs,
    idempotency_lease_s,
    migration_lock_attempts,
    migration_lock_timeout_s,
    migrator_wait_s,
    stored_isk_amounts_read_as_hundredths,
    vault_sweep_grace_s,
    vault_sweep_max_deletions,
    vault_sweep_max_unreferenced_share,
    worker_delivery_slots,
)
from remit.core.ids import has_prefix, is_well_formed_id, new_id, random_string, random_token
from remit.serve import with_core_instance_ports
from remit.webhooks.urls import policy_for


def test_ids_carry_their_prefix_and_are_unique() -> None:
    ids = {new_id("pi") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(has_prefix(i, "pi") and len(i) == 27 for i in ids)


def test_an_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id("zz")


def test_has_prefix_rejects_other_objects_and_bare_prefixes() -> None:
    assert not has_prefix("ch_123", "pi")
    assert not has_prefix("pi_", "pi")
    assert not has_prefix("pi", "pi")


def test_a_well_formed_id_is_its_prefix_then_a_bounded_run_of_letters_and_digits() -> None:
    assert is_well_formed_id(new_id("tdsc"), "tdsc")
    assert is_well_formed_id("acct_1", "acct")
    assert is_well_formed_id(f"acct_{'a' * 64}", "acct")
    assert not is_well_formed_id(f"acct_{'a' * 65}", "acct")
    assert not is_well_formed_id(new_id("pi"), "acct")
    for text in ("acct_", "acct", "acct_\nx", "acct_x\n", "acct_\x00", "acct_\u00e9", "acct_a b",
                 "acct_a_b", "acct_a/b", "acct_\u0661"):  # fmt: skip
        assert not is_well_formed_id(text, "acct"), text


def test_defaults_match_the_documented_ports() -> None:
    config = from_env({})
    assert (config.api.port, config.core.port) == (7420, 7421)
    assert config.api.host == "127.0.0.1"
    assert config.database_url is None


def test_webhooks_may_reach_internal_addresses_only_when_told() -> None:
    """Development mode is off unless REMIT_DEVELOPMENT=1; the allow-list opens only what it
    names."""
    internal = ipaddress.ip_address("127.0.0.1")
    by_default = policy_for(from_env({}))
    assert not by_default.allow_internal
    assert not by_default.address_allowed("127.0.0.1", internal)
    assert policy_for(from_env({"REMIT_DEVELOPMENT": "1"})).address_allowed("127.0.0.1", internal)
    assert not policy_for(from_env({"REMIT_DEVELOPMENT": "0"})).allow_internal
    allowed = policy_for(from_env({"REMIT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}))
    assert allowed.address_allowed("127.0.0.1", internal)
    assert not allowed.address_allowed("10.0.0.1", ipaddress.ip_address("10.0.0.1"))


def test_environment_round_trips_through_to_env() -> None:
    config = from_env({"REMIT_API_PORT": "9000", "DATABASE_URL": "postgresql://x/y"})
    assert from_env(config.to_env()) == config


@pytest.mark.parametrize("value", ["abc", "70000", "-1"])
def test_a_bad_port_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_CORE_PORT"):
        from_env({"REMIT_CORE_PORT": value})


def test_vault_cards_are_swept_a_day_after_storage_unless_configured_otherwise() -> None:
    assert vault_sweep_grace_s({}) == 86400.0
    assert vault_sweep_grace_s({"REMIT_VAULT_SWEEP_GRACE_S": "7200"}) == 7200.0


@pytest.mark.parametrize("value", ["soon", "60", "nan", "inf"])
def test_a_sweep_grace_too_short_or_malformed_names_the_variable(value: str) -> None:
    # Shorter than a request could ever take is the one unsafe setting: an hour is the floor.
    with pytest.raises(ConfigError, match="REMIT_VAULT_SWEEP_GRACE_S"):
        vault_sweep_grace_s({"REMIT_VAULT_SWEEP_GRACE_S": value})


def test_one_vault_sweep_deletes_a_thousand_cards_at_most_unless_configured_otherwise() -> None:
    assert vault_sweep_max_deletions({}) == 1000
    assert vault_sweep_max_deletions({"REMIT_VAULT_SWEEP_MAX_DELETIONS": "50000"}) == 50000


@pytest.mark.parametrize("value", ["many", "0", "-5", "2.5", "1000001"])
def test_a_sweep_deletion_cap_out_of_range_or_malformed_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_VAULT_SWEEP_MAX_DELETIONS"):
        vault_sweep_max_deletions({"REMIT_VAULT_SWEEP_MAX_DELETIONS": value})


def test_a_worker_runs_64_deliveries_at_once_unless_configured_otherwise() -> None:
    assert worker_delivery_slots({}) == 64
    assert worker_delivery_slots({"REMIT_WORKER_DELIVERY_SLOTS": "256"}) == 256


@pytest.mark.parametrize("value", ["many", "0", "-1", "1.5", "1025"])
def test_delivery_slots_out_of_range_or_malformed_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_WORKER_DELIVERY_SLOTS"):
        worker_delivery_slots({"REMIT_WORKER_DELIVERY_SLOTS": value})


def test_migrations_wait_five_seconds_for_a_lock_five_times_unless_configured_otherwise() -> None:
    assert migration_lock_timeout_s({}) == 5.0
    assert migration_lock_attempts({}) == 5
    assert migration_lock_timeout_s({"REMIT_MIGRATION_LOCK_TIMEOUT_S": "0.5"}) == 0.5
    # 0 is PostgreSQL's "no limit", for a maintenance window.
    assert migration_lock_timeout_s({"REMIT_MIGRATION_LOCK_TIMEOUT_S": "0"}) == 0.0
    assert migration_lock_attempts({"REMIT_MIGRATION_LOCK_ATTEMPTS": "1"}) == 1


@pytest.mark.parametrize("value", ["soon", "-1", "0.0001", "601", "nan", "inf"])
def test_a_migration_lock_timeout_out_of_range_or_malformed_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_MIGRATION_LOCK_TIMEOUT_S"):
        migration_lock_timeout_s({"REMIT_MIGRATION_LOCK_TIMEOUT_S": value})


@pytest.mark.parametrize("value", ["few", "0", "2.5", "101"])
def test_a_migration_lock_attempt_count_out_of_range_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_MIGRATION_LOCK_ATTEMPTS"):
        migration_lock_attempts({"REMIT_MIGRATION_LOCK_ATTEMPTS": value})


def test_a_migrator_waits_an_hour_for_another_unless_configured_otherwise() -> None:
    assert migrator_wait_s({}) == 3600.0
    assert migrator_wait_s({"REMIT_MIGRATOR_WAIT_S": "0.3"}) == 0.3
    assert migrator_wait_s({"REMIT_MIGRATOR_WAIT_S": "0"}) == 0.0


@pytest.mark.parametrize("value", ["later", "-1", "0.0001", "86401", "nan"])
def test_a_migrator_wait_out_of_range_or_malformed_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_MIGRATOR_WAIT_S"):
        migrator_wait_s({"REMIT_MIGRATOR_WAIT_S": value})


def test_stored_isk_amounts_are_read_as_hundredths_only_once_the_operator_says_so() -> None:
    assert stored_isk_amounts_read_as_hundredths({}) is False
    assert stored_isk_amounts_read_as_hundredths({"REMIT_STORED_ISK_AMOUNTS": ""}) is False
    assert (
        stored_isk_amounts_read_as_hundredths({"REMIT_STORED_ISK_AMOUNTS": "read-as-hundredths"})
        is True
    )


@pytest.mark.parametrize("value", ["yes", "1", "true", "Read-As-Hundredths", "whole-kronur"])
def test_any_other_decision_on_stored_isk_amounts_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_STORED_ISK_AMOUNTS must be 'read-as-hundredths'"):
        stored_isk_amounts_read_as_hundredths({"REMIT_STORED_ISK_AMOUNTS": value})


def test_one_core_process_is_reached_on_the_core_port() -> None:
    config = from_env({})
    assert config.core_processes == 1
    assert config.core_instance_ports == ()
    assert config.core_balanced_target() == "127.0.0.1:7421"


def test_several_core_processes_are_reached_round_robin_on_their_own_ports() -> None:
    config = from_env({"REMIT_CORE_PROCESSES": "2", "REMIT_CORE_INSTANCE_PORTS": "7431, 7432"})
    assert config.core_processes == 2
    assert config.core_balanced_target() == "ipv4:127.0.0.1:7431,127.0.0.1:7432"
    assert from_env(config.to_env()) == config


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_several_core_processes_on_an_ipv6_address_are_reached_through_an_ipv6_target(
    host: str,
) -> None:
    # gRPC's `ipv4:` scheme takes IPv4 addresses only; `ipv4:::1:7431` is no target at all.
    config = from_env({"REMIT_CORE_HOST": host, "REMIT_CORE_INSTANCE_PORTS": "7431,7432"})
    assert config.core_balanced_target() == "ipv6:[::1]:7431,[::1]:7432"


@pytest.mark.parametrize(
    ("resolved", "target"),
    [(["127.0.0.1"], "ipv4:127.0.0.1:7431,127.0.0.1:7432"),
     (["::1"], "ipv6:[::1]:7431,[::1]:7432"),
     (["10.0.0.5", "10.0.0.6", "10.0.0.5"],
      "ipv4:10.0.0.5:7431,10.0.0.5:7432,10.0.0.6:7431,10.0.0.6:7432"),
     # Both families in one target: gRPC dials an IPv4-mapped address over IPv4.
     (["::1", "127.0.0.1"],
      "ipv6:[::1]:7431,[::1]:7432,[::ffff:127.0.0.1]:7431,[::ffff:127.0.0.1]:7432")],
)  # fmt: skip
def test_several_core_processes_on_a_host_name_are_reached_at_every_address_it_resolves_to(
    resolved: list[str], target: str
) -> None:
    # gRPC lists several addresses only as IP literals: `ipv4:localhost:7431` is no target;
    # and the first address alone may be one the copies do not listen on (::1 without IPv6).
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return resolved

    assert core_instances_target("localhost", (7431, 7432), resolve) == target
    assert asked == ["localhost"]


def test_a_core_host_name_that_does_not_resolve_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unknown(*args: object, **kwargs: object) -> NoReturn:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(ConfigError, match=r"REMIT_CORE_HOST 'core\.invalid' does not resolve"):
        core_instances_target("core.invalid", (7431,))


@pytest.mark.parametrize(
    ("host", "target"),
    [("127.0.0.1", "127.0.0.1:7421"), ("localhost", "localhost:7421"),
     ("::1", "[::1]:7421"), ("[::1]", "[::1]:7421")],
)  # fmt: skip
def test_an_endpoints_target_puts_an_ipv6_address_in_brackets(host: str, target: str) -> None:
    assert Endpoint(host, 7421).target == target


@pytest.mark.parametrize("value", ["0", "-1", "two", "65"])
def test_a_bad_core_process_count_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="REMIT_CORE_PROCESSES"):
        from_env({"REMIT_CORE_PROCESSES": value})


@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_host_is_held_without_brackets_however_it_is_given(host: str) -> None:
    config = from_env({"REMIT_CORE_HOST": host, "REMIT_API_HOST": host})
    assert (config.core.host, config.core.target) == ("::1", "[::1]:7421")
    assert (config.api.host, config.api_base_url) == ("::1", "http://[::1]:7420")
    assert from_env(config.to_env()) == config


@pytest.mark.parametrize("host", ["[localhost]", "[127.0.0.1]", "[::1", "::1]", "localhost:7421"])
def test_a_host_that_is_no_host_names_the_variable(host: str) -> None:
    with pytest.raises(ConfigError, match=r"REMIT_CORE_HOST is no host"):
        from_env({"REMIT_CORE_HOST": host})


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize("host", ["[::1]", "::1", "localhost"])
def test_serve_picks_core_ports_on_an_ipv6_address_in_brackets_or_a_host_name(
    host: str,
) -> None:
    if ":" in host and not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback address")
    config = with_core_instance_ports(
        from_env({"REMIT_CORE_HOST": host, "REMIT_CORE_PROCESSES": "2"})
    )
    assert len(set(config.core_instance_ports)) == 2


def test_serve_says_which_setting_when_the_core_host_does_not_resolve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unknown(*args: object, **kwargs: object) -> NoReturn:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    config = from_env({"REMIT_CORE_HOST": "core.invalid", "REMIT_CORE_PROCESSES": "2",
                       "REMIT_INTERNAL_PLAINTEXT": "allow"})  # fmt: skip
    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    with pytest.raises(ConfigError, match=r"REMIT_CORE_HOST 'core\.invalid' does not resolve"):
        with_core_instance_ports(config)


def test_serve_gives_each_core_process_a_free_port_of_its_own() -> None:
    one = from_env({})
    assert with_core_instance_ports(one) is one
    several = with_core_instance_ports(from_env({"REMIT_CORE_PROCESSES": "3"}))
    assert len(set(several.core_instance_ports)) == 3
    assert all(port > 0 for port in several.core_instance_ports)


def test_tokens_use_every_base62_character_and_nothing_else() -> None:
    seen = set("".join(random_token() for _ in range(500)))
    assert seen == set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def test_a_string_is_one_draw_written_out_in_its_alphabet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounds: list[int] = []

    def draw(bound: int) -> int:
        bounds.append(bound)
        return 2 + 1 * 3 + 0 * 9 + 2 * 27  # digits 2, 1, 0, 2 in base 3, least significant first

    monkeypatch.setattr(secrets, "randbelow", draw)
    assert random_string("abc", 4) == "cbac"
    # Every one of the 3**4 strings is reachable, each from exactly one number.
    assert bounds == [3**4]


def test_the_sweeps_unreferenced_share_defaults_to_half_and_may_be_lifted_to_one() -> None:
    assert vault_sweep_max_unreferenced_share({}) == 0.5
    key = "REMIT_VAULT_SWEEP_MAX_UNREFERENCED_SHARE"
    assert vault_sweep_max_unreferenced_share({key: "1"}) == 1.0
    for bad in ("0", "1.5", "-0.1", "half"):
        with pytest.raises(ConfigError, match=key):
            vault_sweep_max_unreferenced_share({key: bad})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://remit:p#ss@db:5432/remit",
        "postgresql://remit:ab/cd+ef==@db:5432/remit",
        "postgres://remit:x?y@db/remit",
        "postgresql+psycopg://db/remit",
    ],
)
def test_a_database_url_is_taken_as_sqlalchemy_reads_it(url: str) -> None:
    """A password may hold characters a generic URL parser would read as the URL's fragment,
    path or query; the engine reads them as the password, so the URL is usable."""
    assert from_env({"DATABASE_URL": url}).require_database_url() == url


@pytest.mark.parametrize(
    "url",
    [
        "mysql://remit:pw@db/remit",
        "postgresql://remit:pw@db:port/remit",
        "postgresql://remit:pw@db:99999/remit",
        # A space would end the URL where logs mask its password.
        "postgresql://remit:pw and more@db:5432/remit",
    ],
)
def test_a_url_that_is_no_postgresql_url_is_refused_without_being_quoted(url: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is not a PostgreSQL URL") as raised:
        from_env({"DATABASE_URL": url}).require_database_url()
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REMIT_IDEMPOTENCY_LEASE_S", "soon"),
        ("REMIT_IDEMPOTENCY_LEASE_S", "0"),
        ("REMIT_IDEMPOTENCY_LEASE_S", "86400"),
        ("REMIT_NETWORK_TIMEOUT_S", "ten"),
        ("REMIT_NETWORK_TIMEOUT_S", "600"),
    ],
)
def test_a_malformed_timing_setting_stops_the_process_at_start(name: str, value: str) -> None:
    """Read where they are used, on requests; a bad value fails the configuration instead."""
    with pytest.raises(ConfigError, match=name):
        from_env({name: value})


def test_the_idempotency_lease_is_30_seconds_unless_configured() -> None:
    assert idempotency_lease_s({}) == 30.0
    assert idempotency_lease_s({"REMIT_IDEMPOTENCY_LEASE_S": "2.5"}) == 2.5


@pytest.mark.parametrize(
    ("setting", "name", "default", "given", "read"),
    [
        (api_max_in_flight, "REMIT_API_MAX_IN_FLIGHT", 256, "64", 64),
        (grpc_max_concurrent_rpcs, "REMIT_GRPC_MAX_CONCURRENT_RPCS", 512, "100", 100),
        (database_pool_timeout_s, "REMIT_DATABASE_POOL_TIMEOUT_S", 5.0, "0.5", 0.5),
        (api_read_timeout_s, "REMIT_API_READ_TIMEOUT_S", 10.0, "0.5", 0.5),
        (api_max_connections, "REMIT_API_MAX_CONNECTIONS", 4096, "100", 100),
    ],
)
def test_the_overload_bounds_have_defaults_and_refuse_nonsense(
    setting: Callable[[dict[str, str]], float], name: str, default: float, given: str, read: float
) -> None:
    """Each bound refuses excess load at once; 0 would refuse everything, so it is no way to
    lift one."""
    assert setting({}) == default
    assert setting({name: given}) == read
    for nonsense in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match=name):
            setting({name: nonsense})
