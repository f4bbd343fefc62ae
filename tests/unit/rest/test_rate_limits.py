"""Per-account token buckets: a second's burst, then the limit's pace; reads and writes apart."""

import pytest

from remit.config import (
    ConfigError,
    client_rate_limit_per_s,
    forwarded_allow_ips,
    rate_limit_per_s,
)
from remit.rest.rate_limits import RateLimits, TokenBuckets, client_bucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_limit_passes_then_requests_wait_for_the_refill() -> None:
    clock = Clock()
    buckets = TokenBuckets(4, clock)
    assert [buckets.admit("acct_a") for _ in range(5)] == [True, True, True, True, False]
    clock.now += 0.25  # a quarter of a second refills one request of four a second
    assert [buckets.admit("acct_a") for _ in range(2)] == [True, False]
    clock.now += 10  # idle: full again, never more than one second's worth
    assert sum(buckets.admit("acct_a") for _ in range(10)) == 4


def test_a_limit_below_one_a_second_still_lets_one_request_through() -> None:
    clock = Clock()
    buckets = TokenBuckets(0.5, clock)
    assert [buckets.admit("acct_a") for _ in range(2)] == [True, False]
    clock.now += 1.0
    assert not buckets.admit("acct_a")
    clock.now += 1.0
    assert buckets.admit("acct_a")


def test_a_refused_request_is_not_counted() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, clock)
    assert [buckets.admit("acct_a") for _ in range(2)] == [True, True]
    for _ in range(100):
        assert not buckets.admit("acct_a")
    clock.now += 0.5
    assert buckets.admit("acct_a")


def test_accounts_and_kinds_have_buckets_of_their_own() -> None:
    limits = RateLimits(TokenBuckets(1, Clock()), TokenBuckets(1, Clock()))
    assert limits.admit("acct_a", write=True)
    assert not limits.admit("acct_a", write=True)
    assert limits.admit("acct_a", write=False)
    assert limits.admit("acct_b", write=True)


def test_a_limit_of_zero_is_no_limit() -> None:
    buckets = TokenBuckets(0, Clock())
    assert all(buckets.admit("acct_a") for _ in range(10_000))
    assert buckets.accounts_tracked == 0


def test_buckets_of_idle_accounts_are_dropped_when_many_accounts_are_tracked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("remit.rest.rate_limits._MAX_BUCKETS", 3)
    clock = Clock()
    buckets = TokenBuckets(5, clock)
    for account in ("a", "b", "c"):
        assert buckets.admit(account)
    clock.now += 1.0  # all three are full again: forgetting them changes nothing
    assert buckets.admit("d")
    assert buckets.accounts_tracked == 1
    # A busy account's bucket is kept: its spent tokens still count.
    for _ in range(4):
        assert buckets.admit("d")
    for account in ("e", "f", "g"):
        assert buckets.admit(account)
    assert not buckets.admit("d")


def test_the_limits_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    assert rate_limit_per_s("reads", {}) == 1000.0
    assert rate_limit_per_s("writes", {"REMIT_RATE_LIMIT_WRITES_PER_S": "25"}) == 25.0
    assert rate_limit_per_s("writes", {"REMIT_RATE_LIMIT_WRITES_PER_S": "0"}) == 0.0
    for bad in ("-1", "fast", "1e9"):
        with pytest.raises(ConfigError, match="REMIT_RATE_LIMIT_READS_PER_S"):
            rate_limit_per_s("reads", {"REMIT_RATE_LIMIT_READS_PER_S": bad})


def test_client_addresses_have_buckets_of_their_own_and_an_unknown_one_is_counted_too() -> None:
    clock = Clock()
    limits = RateLimits(TokenBuckets(0), TokenBuckets(0), TokenBuckets(2, clock))
    assert [limits.admit_client("203.0.113.9") for _ in range(3)] == [True, True, False]
    assert limits.admit_client("198.51.100.7")
    assert [limits.admit_client(None) for _ in range(3)] == [True, True, False]
    # Account limits are apart from client ones.
    assert limits.admit("acct_a", write=True)


def test_the_client_limit_comes_from_the_environment_and_covers_loopback_by_default() -> None:
    assert client_rate_limit_per_s({}) == 1000.0
    assert client_rate_limit_per_s({"REMIT_RATE_LIMIT_CLIENT_PER_S": "5"}) == 5.0
    with pytest.raises(ConfigError, match="REMIT_RATE_LIMIT_CLIENT_PER_S"):
        client_rate_limit_per_s({"REMIT_RATE_LIMIT_CLIENT_PER_S": "-1"})
    # A clock that stands still: no refill however long the loop takes.
    limits = RateLimits(
        TokenBuckets(0), TokenBuckets(0), TokenBuckets(client_rate_limit_per_s({}), Clock())
    )
    assert sum(limits.admit_client("127.0.0.1") for _ in range(1001)) == 1000


def test_a_key_lookup_is_counted_before_it_is_made_and_handed_back_when_the_key_is_found() -> None:
    clock = Clock()
    limits = RateLimits(TokenBuckets(0), TokenBuckets(0), TokenBuckets(2, clock))
    # Two look-ups in flight at once use the address's two; a third waits for a refill.
    assert [limits.reserve_key_lookup("203.0.113.9") for _ in range(3)] == [True, True, False]
    limits.release_key_lookup("203.0.113.9")  # one key was found: it does not count
    assert limits.reserve_key_lookup("203.0.113.9")
    assert not limits.reserve_key_lookup("203.0.113.9")
    assert limits.reserve_key_lookup("198.51.100.7")  # another address is not held back
    clock.now += 0.5  # one request refilled
    assert limits.reserve_key_lookup("203.0.113.9")


def test_handing_back_never_goes_past_a_full_bucket_and_keeps_no_state() -> None:
    clock = Clock()
    buckets = TokenBuckets(2, clock)
    buckets.give_back("203.0.113.9")  # never counted: nothing to hand back, nothing kept
    assert buckets.accounts_tracked == 0
    assert buckets.admit("203.0.113.9")
    buckets.give_back("203.0.113.9")
    buckets.give_back("203.0.113.9")
    assert buckets.accounts_tracked == 0  # full again: dropped
    assert [buckets.admit("203.0.113.9") for _ in range(3)] == [True, True, False]


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_as_itself() -> None:
    assert client_bucket("2001:db8:1:2:aaaa::1") == client_bucket("2001:db8:1:2:bbbb::9")
    assert client_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_bucket("2001:db8:1:3::1") != client_bucket("2001:db8:1:2::1")
    assert client_bucket("::ffff:203.0.113.9") == client_bucket("203.0.113.9") == "203.0.113.9"
    assert client_bucket(None) == client_bucket("") == "unknown"
    limits = RateLimits(TokenBuckets(0), TokenBuckets(0), TokenBuckets(1, Clock()))
    assert limits.admit_client("2001:db8:1:2::1")
    assert not limits.admit_client("2001:db8:1:2:ffff::2")


def test_the_trusted_proxies_come_from_the_environment_as_uvicorn_takes_them() -> None:
    assert forwarded_allow_ips({}) == "127.0.0.1,::1"
    assert forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": ""}) == "127.0.0.1,::1"
    given = "10.0.0.0/8, 192.0.2.7,fd00::/8"
    assert forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": given}) == given
    assert forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": "FD00:0::/8"}) == "FD00:0::/8"
    with pytest.raises(ConfigError, match="REMIT_FORWARDED_ALLOW_IPS"):
        forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": "10.0.0.1,lb.internal"})


@pytest.mark.parametrize("everyone", ["*", "10.0.0.1, *", "0.0.0.0/0", "::/0", "0.0.0.0/0,::/0"])
def test_trusting_every_proxy_is_refused_at_start(everyone: str) -> None:
    """uvicorn would take X-Forwarded-For's leftmost entry, which the client writes: every
    client would choose the address its failed authentications are counted against."""
    with pytest.raises(ConfigError) as refused:
        forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": everyone})
    message = str(refused.value)
    assert message.startswith("REMIT_FORWARDED_ALLOW_IPS: ")
    assert "choose the address" in message
    assert "\n" not in message


def test_a_network_with_bits_past_its_prefix_is_refused_naming_the_one_meant() -> None:
    """uvicorn would take `10.0.0.1/8` for a host name, and trust no proxy by it."""
    with pytest.raises(ConfigError, match=r"10\.0\.0\.1/8 .*did you mean 10\.0\.0\.0/8\?"):
        forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": "192.0.2.7,10.0.0.1/8"})


def test_found_keys_leave_no_state_and_busy_buckets_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    limits = RateLimits(TokenBuckets(0), TokenBuckets(0), TokenBuckets(5, clock))
    for n in range(50):
        assert limits.reserve_key_lookup(f"2001:db8:{n}::1")
        limits.release_key_lookup(f"2001:db8:{n}::1")
    assert limits.clients.accounts_tracked == 0

    monkeypatch.setattr("remit.rest.rate_limits._MAX_BUCKETS", 4)
    for n in range(9):  # all used within the same instant: none is idle
        assert limits.reserve_key_lookup(f"198.51.100.{n}")
    assert limits.clients.accounts_tracked <= 4


@pytest.mark.parametrize(
    "too_wide", ["0.0.0.0/1", "128.0.0.0/7", "192.0.2.7,0.0.0.0/4", "::/1", "fc00::/6", "8000::/1"]
)
def test_a_network_wider_than_a_private_block_is_refused_at_start(too_wide: str) -> None:
    """Half of every address is as good as all of them: the clients it takes in would each
    choose the address they are counted as."""
    with pytest.raises(ConfigError) as refused:
        forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": too_wide})
    message = str(refused.value)
    assert message.startswith(f"REMIT_FORWARDED_ALLOW_IPS: {too_wide.split(',')[-1]} is wider")
    assert "IPv4 networks wider than /8 and IPv6 ones wider than /7 are refused" in message
    assert "\n" not in message


def test_the_widest_private_blocks_are_taken() -> None:
    given = "10.0.0.0/8,fc00::/7"
    assert forwarded_allow_ips({"REMIT_FORWARDED_ALLOW_IPS": given}) == given
