"""Authenticating API keys: Bearer or HTTP Basic, checked against the accounts service.

Successful look-ups are cached for a few seconds per key digest, so a busy client costs one
accounts call per interval rather than one per request; a revoked key stops working within
`CACHE_TTL_S`. Failed ones are too, for less long (`REFUSED_TTL_S`): a client repeating a
wrong key is answered without asking the accounts service each time. Requests that come with
the same key while it is being looked up wait for that look-up rather than make their own.
Keys are random, so no key is presented before it exists but by chance, and the short refusal
costs nothing.

A key found good is also vouched for, by its digest, for much longer (`VOUCHED_TTL_S`): once
its cache entry has expired it is looked up again like any other, so a revoked key still stops
working within `CACHE_TTL_S`, but the facade lets that look-up through without counting it
against the client's address (`remit.rest.app`). Merchants behind one shared address (a load
balancer's) then keep working while a client there uses the address's failed authentications
up trying keys. A vouched key that is then refused is vouched for no longer.

That memory is the process's own: a restarted api process has found no key good yet, and a
merchant quiet for longer than `VOUCHED_TTL_S` has aged out of it. So once an address has no
failed authentications left, a key it does not vouch for is checked against the keys the
accounts service has on record (`records`: the digests of the keys that work), read at most
once per `RECORDS_TTL_S` and only then, never on a request's way otherwise: a key on record is
let through and looked up as a vouched one is. A guesser's keys are not on record, so its
guesses still cost the accounts service nothing past the address's limit; a key revoked since
the last read is refused by its look-up, counted, and dropped from the record.
"""

import asyncio
import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from remit.accounts.domain import Principal
from remit.rest.errors import StripeError

CACHE_TTL_S = 5.0
REFUSED_TTL_S = 2.0
# Long enough to cover a merchant's quiet spells, so one coming back while a key guesser shares
# its address is not held back; vouching only spares the address's limit, never a look-up.
VOUCHED_TTL_S = 24 * 3600.0
_CACHE_LIMIT = 10_000
# How long the keys on record are relied on before they are read again (when next needed).
RECORDS_TTL_S = 60.0

Lookup = Callable[[str], Awaitable[Principal | None]]
# The digests of the keys that work, as the accounts service has them.
Records = Callable[[], Awaitable[frozenset[bytes]]]

log = logging.getLogger(__name__)


def presented_key(authorization: str | None) -> str | None:
    """The API key in an Authorization header (Bearer, or Basic with the key as user name)."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0]
    return ""


@dataclass
class Authenticator:
    lookup: Lookup
    clock: Callable[[], float] = time.monotonic
    _cache: dict[bytes, tuple[float, Principal]] = field(default_factory=dict)
    # Digests of keys the accounts service did not know, until when they are refused unasked.
    _refused: dict[bytes, float] = field(default_factory=dict)
    # Digests of keys found good, until when they are vouched for (`VOUCHED_TTL_S`), in the
    # order they were last found good, which is also the order they expire in.
    _vouched: dict[bytes, float] = field(default_factory=dict)
    # Look-ups under way, by key digest: concurrent requests with one key share one look-up.
    _looking_up: dict[bytes, "asyncio.Future[Principal | None]"] = field(default_factory=dict)
    # The keys on record (`on_record`), when they were last read, and the read under way.
    records: Records | None = None
    _on_record: set[bytes] = field(default_factory=set)
    _records_read_at: float | None = None
    _reading_records: "asyncio.Future[None] | None" = None

    async def authenticate(self, authorization: str | None) -> Principal:
        key = presented_key(authorization)
        if key is None:
            raise StripeError.missing_api_key()
        if key == "":
            raise StripeError.invalid_api_key("")
        digest = hashlib.sha256(key.encode()).digest()
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        refused_until = self._refused.get(digest)
        if refused_until is not None and refused_until > now:
            raise StripeError.invalid_api_key(key)
        looking = self._looking_up.get(digest)
        if looking is None:
            looking = asyncio.ensure_future(self._look_up(key, digest))
            self._looking_up[digest] = looking
            looking.add_done_callback(lambda done: self._looked_up(digest, done))
        # Shielded: a request that goes away (its client hung up) does not cancel the look-up
        # other requests with the same key are waiting on.
        principal = await asyncio.shield(looking)
        if principal is None:
            raise StripeError.invalid_api_key(key)
        return principal

    def looking_up(self, authorization: str | None) -> bool:
        """Whether the key in `authorization` is being looked up for another request right now:
        this one then waits for that answer and makes no look-up of its own."""
        key = presented_key(authorization)
        if not key:
            return False
        return hashlib.sha256(key.encode()).digest() in self._looking_up

    async def _look_up(self, key: str, digest: bytes) -> Principal | None:
        try:
            principal = await self.lookup(key)
        except StripeError as error:
            if error.http_status == 401:
                # Expired (revoked): it no longer passes an address's limit either.
                self._vouched.pop(digest, None)
                self._on_record.discard(digest)
            raise
        now = self.clock()
        if principal is None:
            if len(self._refused) >= _CACHE_LIMIT:
                self._forget_expired_refusals(now)
            self._refused[digest] = now + REFUSED_TTL_S
            self._vouched.pop(digest, None)
            self._on_record.discard(digest)
            return None
        self._refused.pop(digest, None)
        self._vouch_for(digest, now)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = (now + CACHE_TTL_S, principal)
        return principal

    def _looked_up(self, digest: bytes, done: "asyncio.Future[Principal | None]") -> None:
        if self._looking_up.get(digest) is done:
            del self._looking_up[digest]
        if not done.cancelled():
            # Read here too, so a failure no request was left waiting for is not reported as
            # an exception never retrieved.
            done.exception()

    def vouched(self, authorization: str | None) -> bool:
        """Whether the key in `authorization` was found good within `VOUCHED_TTL_S` (and not
        refused since): its look-up need not wait on the client's address."""
        key = presented_key(authorization)
        if not key:
            return False
        until = self._vouched.get(hashlib.sha256(key.encode()).digest())
        return until is not None and until > self.clock()

    async def on_record(self, authorization: str | None) -> bool:
        """Whether the key in `authorization` is among the keys the accounts service has on
        record, as last read (within `RECORDS_TTL_S`, read again first when older): for an
        address with no failed authentications left, whose look-ups a key it does not vouch
        for would otherwise wait on. False without `records`, or when they could not be read."""
        key = presented_key(authorization)
        if not key or self.records is None:
            return False
        read_at = self._records_read_at
        if read_at is None or self.clock() - read_at >= RECORDS_TTL_S:
            if self._reading_records is None:
                reading = asyncio.ensure_future(self._read_records())
                self._reading_records = reading
                reading.add_done_callback(self._records_read)
            # Shielded, as a look-up is: every request waiting shares the one read.
            await asyncio.shield(self._reading_records)
        return hashlib.sha256(key.encode()).digest() in self._on_record

    async def _read_records(self) -> None:
        assert self.records is not None
        try:
            self._on_record = set(await self.records())
        except Exception as error:
            # The keys read before, if any, stay; read again a minute on, not on every request.
            log.warning("could not read the keys on record: %s", error)
        self._records_read_at = self.clock()

    def _records_read(self, done: "asyncio.Future[None]") -> None:
        if self._reading_records is done:
            self._reading_records = None
        if not done.cancelled():
            done.exception()

    def _vouch_for(self, digest: bytes, now: float) -> None:
        self._vouched.pop(digest, None)  # to the end: the latest to expire
        # Oldest first: the expired ones, then, when full of fresh ones, the least recently
        # found good, so that memory stays bounded.
        while self._vouched:
            oldest, until = next(iter(self._vouched.items()))
            if until > now and len(self._vouched) < _CACHE_LIMIT:
                break
            del self._vouched[oldest]
        self._vouched[digest] = now + VOUCHED_TTL_S

    def known(self, authorization: str | None) -> Principal | None:
        """The principal a key was found to be within `CACHE_TTL_S`, without asking the
        accounts service; None if it was not (or is not a key at all)."""
        key = presented_key(authorization)
        if not key:
            return None
        cached = self._cache.get(hashlib.sha256(key.encode()).digest())
        if cached is None or cached[0] <= self.clock():
            return None
        return cached[1]

    def _forget_expired_refusals(self, now: float) -> None:
        for digest, until in list(self._refused.items()):
            if until <= now:
                del self._refused[digest]
        if len(self._refused) >= _CACHE_LIMIT:
            # All still fresh: a flood of distinct keys. Start over rather than grow.
            self._refused.clear()

    def forget(self, principal: Principal) -> None:
        """Drop cached entries for an account (after its pin changes, say)."""
        for digest, (_, cached) in list(self._cache.items()):
            if cached.account_id == principal.account_id:
                del self._cache[digest]
