"""The outbound HTTP client that POSTs events to endpoints.

aiohttp was chosen by measurement (bench/bench_webhook_http_clients.py): about 0.15 ms of CPU
per request against 2.2 ms for httpx's async client, same machine, 64 connections. Redirects are
not followed (a 3xx is a failed attempt, as at Stripe). The status line and headers decide an
attempt; of the body only the first bytes are read, in one read waited on briefly
(SNIPPET_WAIT_S), so that a body left open or sent slowly neither fails the attempt nor holds
it. Every connection is checked against the `UrlPolicy`: the resolver drops refused addresses
of a name, and the connector refuses any address it is about to connect to, literal ones
included (aiohttp connects to an IP address in the URL without asking the resolver).

The client is shared by every delivery of every account: it keeps no cookies (one merchant's
receiver setting one would have it sent to another's on the same host), and asks for bodies
uncompressed, since only a snippet of each is kept, as text.
"""

import asyncio
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from remit.core.logging import mask_sensitive
from remit.core.stored_text import storable_text
from remit.webhooks.domain import DELIVERY_TIMEOUT_S
from remit.webhooks.urls import BlockedAddressError, UrlPolicy, check_literal_host, literal_address

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

DEFAULT_TIMEOUT_S: Final = DELIVERY_TIMEOUT_S
SNIPPET_BYTES: Final = 512
# Read past the snippet's end so that a card number (19 digits and 18 separators at most) or a
# secret straddling the cut is masked whole before the snippet is cut.
SNIPPET_LOOKAHEAD_BYTES: Final = 64
# How long the snippet's read waits for a body's first bytes once the status line is in.
SNIPPET_WAIT_S: Final = 1.0
USER_AGENT: Final = "remit-webhooks/1.0"
# POSTs in flight at once, for a sender whose caller does not bound them itself (the core's
# resends, the listening tool).
DEFAULT_MAX_CONNECTIONS: Final = 256


@dataclass(frozen=True)
class HttpResult:
    http_status: int | None
    latency_ms: int
    response_snippet: str
    error: str | None
    retry_after: str | None


def allowed_addresses(
    policy: UrlPolicy, host: str, results: Sequence[ResolveResult]
) -> list[ResolveResult]:
    """The addresses of `host` the policy lets a delivery connect to; BlockedAddressError if
    none (an address that is no IP address at all is refused too)."""
    allowed = []
    for result in results:
        address = literal_address(result["host"])
        if address is not None and policy.address_allowed(host, address):
            allowed.append(result)
    if not allowed:
        raise BlockedAddressError(f"{host} resolves only to internal addresses")
    return allowed


class PolicyResolver(AbstractResolver):
    """Resolves names as usual, then drops the addresses the policy refuses."""

    def __init__(self, policy: UrlPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return allowed_addresses(self._policy, host, await self._inner.resolve(host, port, family))

    async def close(self) -> None:
        await self._inner.close()


class PolicyConnector(aiohttp.TCPConnector):
    """Checks every address a connection is about to be made to, whatever gave it: the
    resolver, its cache, or the URL itself. aiohttp answers a literal IP address in
    `_resolve_host` without the resolver, so the check sits there: the host it is given is
    the one it connects to (yarl's), however the URL spelt it."""

    def __init__(self, policy: UrlPolicy, **options: Any) -> None:
        super().__init__(resolver=PolicyResolver(policy), **options)
        self._policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: "Sequence[Trace] | None" = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        return allowed_addresses(self._policy, host, results)


class WebhookSender:
    """One connection pool per process; call `close` at shutdown.

    `max_connections` bounds the POSTs in flight at once; None: no bound of its own, for a
    caller that bounds them itself (the worker's delivery slots do). A POST past the bound
    waits for its turn before its attempt starts: its timeout and its latency count from
    then. Counted from the call, as aiohttp's own connection limit counts its wait, a POST
    that waited its turn would be recorded as the endpoint's timeout (retried, and counted
    towards disabling the endpoint) though it was often made, and the event delivered twice."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
        snippet_bytes: int = SNIPPET_BYTES,
        snippet_wait_s: float = SNIPPET_WAIT_S,
    ) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._turns = None if max_connections is None else asyncio.Semaphore(max_connections)
        self._snippet_bytes = snippet_bytes
        self._snippet_wait_s = snippet_wait_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def timeout_s(self) -> float:
        """The longest one attempt's POST may take, its response's snippet read."""
        return self._timeout_s

    @property
    def max_connections(self) -> int | None:
        """How many POSTs may be in flight at once (None: as many as are made)."""
        return self._max_connections

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = PolicyConnector(
                self._policy,
                # No limit of the pool's own: its wait would count in the attempt's timeout
                # (`post` waits for a turn before the attempt instead).
                limit=0,
                limit_per_host=0,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                # Only a snippet of a body is kept, as text: a compressed one would be bytes
                # no one can read.
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
                # Bodies from endpoints are echoed only as a snippet, never parsed.
                auto_decompress=False,
                # Every account's deliveries share the session: a cookie one receiver sets
                # must not be sent to another's on the same host, nor fill a jar for good.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResult:
        if self._turns is None:
            return await self._attempt(url, body, headers)
        async with self._turns:
            return await self._attempt(url, body, headers)

    async def _attempt(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpResult:
        started = time.monotonic()
        answered = False

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            check_literal_host(url, self._policy)
            async with self._client().post(
                url, data=body, headers=dict(headers), allow_redirects=False
            ) as response:
                # The status line and headers are the answer: a 2xx is a success (and a 410 or
                # 429 keeps its meaning) whatever becomes of the body afterwards.
                status, retry_after = response.status, response.headers.get("Retry-After")
                answered = True
                raw, more = await self._read_snippet(response, started)
                return HttpResult(
                    http_status=status,
                    latency_ms=elapsed_ms(),
                    response_snippet=masked_snippet(raw, self._snippet_bytes, more=more),
                    error=None,
                    retry_after=retry_after,
                )
        except TimeoutError:
            return _failure(elapsed_ms(), f"timeout after {self._timeout_s:g}s")
        except BlockedAddressError as error:
            return _failure(elapsed_ms(), f"blocked: {error}")
        except aiohttp.ClientConnectorError as error:
            return _failure(elapsed_ms(), f"connection failed: {_reason(error)}")
        except (aiohttp.ClientError, OSError) as error:
            return _failure(elapsed_ms(), f"{type(error).__name__}: {_reason(error)}")
        except ValueError as error:
            # A URL saved before its host was checked as a name: the resolver's `idna` codec
            # refuses an empty label or one over 63 characters with a UnicodeError (a
            # ValueError, as yarl's and the socket module's other refusals of a URL are). It
            # is the endpoint's failed attempt, retried and counted towards disabling it like
            # any other, not an error of the delivery job (nor of a resend). Raised once the
            # endpoint has answered, it is no refusal of the URL but remit's own fault: an
            # answer recorded as the endpoint's failure would count towards disabling it.
            if answered:
                raise
            return _failure(elapsed_ms(), f"invalid URL: {type(error).__name__}: {error}")

    async def _read_snippet(
        self, response: aiohttp.ClientResponse, started: float
    ) -> tuple[bytes, bool]:
        """The first bytes of the body and whether more may follow. One read, as many bytes as
        have come (up to these), waited on for `snippet_wait_s` at most and never past the
        attempt's overall timeout: an endpoint that keeps its body open, or sends it slowly,
        leaves an empty (or short) snippet, not a failed attempt."""
        remaining = self._timeout_s - (time.monotonic() - started)
        try:
            async with asyncio.timeout(max(0.0, min(self._snippet_wait_s, remaining))):
                raw = await response.content.read(self._snippet_bytes + SNIPPET_LOOKAHEAD_BYTES)
        except (TimeoutError, aiohttp.ClientError, OSError):
            # aiohttp's own overall timer may fire first; a body cut off is no answer either.
            return b"", True
        return raw, not response.content.at_eof()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Lets the SSL transports finish closing (aiohttp's documented graceful shutdown).
            await asyncio.sleep(0)


# The fewest digits at a snippet's end masked as what a cut left of a number.
_CUT_DIGITS_MASKED: Final = 7
_DIGITS: Final = frozenset("0123456789")
# What may stand between the digits of a card number, any number of them, as the vault takes.
_SEPARATORS: Final = frozenset(" -")


def masked_snippet(raw: bytes, limit: int, *, more: bool) -> str:
    """The first `limit` bytes (whole characters) of a response body, masked. `raw` holds some
    bytes more than `limit` when the body is longer: it is masked first, then cut, so that a card
    number or secret straddling the cut is recognised whole. `more` says the body may go on past
    `raw` (one read may end within the first `limit` bytes). Where the text was cut, or may have
    been (masking can also shorten it below `limit`, bringing the end of `raw` into it), a run of
    7 or more digits left at its end is masked too. A NUL byte (every gzip stream has some),
    which no stored text may hold, reads as U+FFFD, as bytes that are no UTF-8 do."""
    text = mask_sensitive(storable_text(raw.decode("utf-8", errors="replace")))
    encoded = text.encode("utf-8")
    if len(encoded) > limit:
        text = encoded[:limit].decode("utf-8", errors="ignore")
    elif not more:
        return text
    return _without_cut_digits(text)


def _without_cut_digits(text: str) -> str:
    """`text` with the run of digits at its end (separators between them) masked when it holds
    7 digits or more: what remains of a number that went on past the cut, which the card check
    cannot recognise any more. Walked back from the end: a pattern anchored there would be
    tried from every digit before it."""
    start = len(text)
    while start and (text[start - 1] in _DIGITS or text[start - 1] in _SEPARATORS):
        start -= 1
    while start < len(text) and text[start] in _SEPARATORS:
        start += 1
    if sum(char in _DIGITS for char in text[start:]) < _CUT_DIGITS_MASKED:
        return text
    return text[:start] + "[cut ****]"


def _failure(latency_ms: int, error: str) -> HttpResult:
    return HttpResult(None, latency_ms, "", storable_text(error[:500]), None)


def _reason(error: Any) -> str:
    inner = getattr(error, "os_error", None)
    if isinstance(inner, BlockedAddressError):
        return f"blocked: {inner}"
    return str(error) or type(error).__name__
