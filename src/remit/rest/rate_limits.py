"""Per-account request rate limits, enforced by the facade: the one process clients reach.

Stripe limits each account's requests per second, reads and writes apart, and answers a request
over the limit with 429 `rate_limit`. Its defaults suit a hosted service shared by many
merchants (100 a second of each in live mode, 25 in test mode). A remit installation serves one
operator's accounts on its own machines, so its defaults are sized to stop a runaway client
from taking the platform down rather than to share it out (`remit.config.rate_limit_per_s`),
and either limit can be lifted.

Requests that fail authentication, and hits on the key-less 3-D Secure pages, are also counted
per client IP address: a client trying keys is held back even though no account is known to
count it against (`remit.config.client_rate_limit_per_s`). An address with nothing left is
refused before its key is looked up, so a flood of wrong keys costs the accounts service
nothing; a key found good lately still passes, from the authenticator's cache or looked up
again unheld (`remit.rest.auth.VOUCHED_TTL_S`), and so does a key the accounts service has on
record (`remit.rest.auth.Authenticator.on_record`). Each look-up is
counted before it is made and handed back when the key is found, so a burst of wrong keys sent
at once is held to the limit as well as one sent key after key. An
authenticated request is never counted against its address: many merchants may share one (a
load balancer's, when it is not a trusted proxy), and each is held to its account's limits. The
address is the one uvicorn reports: the peer's, or, from a proxy it trusts
(`remit.config.forwarded_allow_ips`), the client's as X-Forwarded-For names it. An IPv6 client
is counted by its /64, the block a single host is usually given whole.

Each account has a token bucket per kind that holds one second of its limit (one request at
least, for a limit below one a second): a burst up to the limit passes at once, then requests
pass as fast as the limit refills. The buckets live in the
api process, so with several api processes sharing the port each enforces the limit on the
requests it serves.
"""

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request


def client_address(request: Request) -> str | None:
    """The client's IP address as uvicorn reports it (None: unknown, as over a Unix socket)."""
    return request.client.host if request.client is not None else None


# A single IPv6 host is commonly given a whole /64: counted per address, it would have more
# buckets than it could ever empty.
_IPV6_CLIENT_PREFIX = 64


def client_bucket(address: str | None) -> str:
    """The bucket `address` is counted in: an IPv4 address (IPv4-mapped ones included) alone,
    an IPv6 one by its /64; an unknown or unparsable one as given, unknown ones together."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, _IPV6_CLIENT_PREFIX), strict=False))
    return str(parsed)


# Past this many accounts, buckets idle long enough to be full again are dropped (they would
# start full anyway), so memory stays bounded.
_MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    refilled_at: float


@dataclass
class TokenBuckets:
    """One kind of request (reads, or writes): `per_second` per account, 0 for no limit."""

    per_second: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def admit(self, account_id: str) -> bool:
        """Count a request of `account_id`; False if it is over the limit (and not counted)."""
        if self.per_second <= 0:
            return True
        bucket = self._refilled(account_id)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def give_back(self, key: str) -> None:
        """Undo an `admit` of `key` whose request turned out not to count. A bucket full again
        is dropped: it would start full anyway, and a key whose requests are all given back
        keeps no state."""
        if self.per_second <= 0 or key not in self._buckets:
            return
        bucket = self._refilled(key)
        capacity = max(1.0, self.per_second)
        bucket.tokens = min(capacity, bucket.tokens + 1)
        if bucket.tokens >= capacity:
            del self._buckets[key]

    def _refilled(self, key: str) -> _Bucket:
        now = self.clock()
        capacity = max(1.0, self.per_second)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(capacity, now)
        else:
            elapsed = now - bucket.refilled_at
            bucket.tokens = min(capacity, bucket.tokens + elapsed * self.per_second)
            bucket.refilled_at = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        # A bucket idle this long is full again: forgetting it changes nothing.
        full_after = max(1.0, 1.0 / self.per_second)
        for account_id, bucket in list(self._buckets.items()):
            if now - bucket.refilled_at >= full_after:
                del self._buckets[account_id]
        if len(self._buckets) >= _MAX_BUCKETS:
            # None idle (many keys at once, e.g. addresses from a large IPv6 range): forget the
            # fullest half, whose keys lose least by starting full again, so that the next new
            # keys do not each scan them all again and memory stays bounded. Exhausted keys,
            # the ones the limit is holding back, are the last to go.
            fullest = sorted(self._buckets, key=lambda k: self._buckets[k].tokens, reverse=True)
            for key in fullest[: len(fullest) // 2]:
                del self._buckets[key]

    @property
    def accounts_tracked(self) -> int:
        return len(self._buckets)


@dataclass
class RateLimits:
    reads: TokenBuckets
    writes: TokenBuckets
    # Per client address (`client_bucket`): failed authentications and 3-D Secure page hits.
    clients: TokenBuckets = field(default_factory=lambda: TokenBuckets(0))

    @classmethod
    def of(cls, reads_per_s: float, writes_per_s: float, client_per_s: float = 0) -> "RateLimits":
        return cls(
            TokenBuckets(reads_per_s), TokenBuckets(writes_per_s), TokenBuckets(client_per_s)
        )

    def admit(self, account_id: str, *, write: bool) -> bool:
        return (self.writes if write else self.reads).admit(account_id)

    def admit_client(self, address: str | None) -> bool:
        """Count a request from `address` that carries no key, as a 3-D Secure page hit
        (None: unknown, as from a Unix socket; counted together); False if it is over."""
        return self.clients.admit(client_bucket(address))

    def reserve_key_lookup(self, address: str | None) -> bool:
        """Count a key look-up for `address` before it is made (False: none left, nothing
        counted): concurrent wrong keys are then held to the limit too, not only those that
        arrive after an earlier one failed. `release_key_lookup` hands it back."""
        return self.clients.admit(client_bucket(address))

    def count_failed_key_lookup(self, address: str | None) -> None:
        """Count against `address` a look-up made without a reservation (of a key found good
        before) that failed on the key; nothing when the address has none left."""
        self.clients.admit(client_bucket(address))

    def release_key_lookup(self, address: str | None) -> None:
        """The reserved look-up does not count against `address`: it found its key, or it
        failed on the platform's side rather than on the client's key."""
        self.clients.give_back(client_bucket(address))
