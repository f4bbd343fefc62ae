"""Which URLs an endpoint may have, and which addresses a delivery may connect to.

Endpoint URLs are http or https with a host and no credentials. Outside development mode a
delivery must not reach loopback, private, link-local or otherwise internal addresses (so a
webhook cannot be used to probe the network remit runs in) unless the operator allows the host
with REMIT_WEBHOOK_ALLOWED_HOSTS. Literal addresses are checked when the URL is saved and before
each delivery, and every address a delivery connects to, literal or resolved, is checked again
at connection time (`remit.webhooks.sender.PolicyConnector`).

A URL's host is always read as aiohttp will connect to it: yarl's parse, IDNA-normalised, so
127.0.0.1 written with full-width digits (U+FF11...), or 169.254.169.254 with ideographic full
stops (U+3002), is that address here too, not a host name as `urllib.parse` reads it.

An IPv4 address must be written in dotted-decimal form. aiohttp refuses to connect to the
legacy numeric forms (`127.1`, `2130706433`, `0177.0.0.1`, `127.0.0.1.`), so an endpoint with
one would fail every delivery; the hexadecimal ones (`0x7f.0.0.1`) it hands to the resolver,
which reads them as the address, not the name they pass for when the URL is saved. Both are
refused when the URL is saved; a host name with a trailing dot (`example.com.`) is not.

A host name must be one the resolver looks up: yarl accepts an empty label (`a..b.com`) and
labels or names of any length, which the resolver refuses (the `idna` codec it encodes a name
with raises UnicodeError), so such a URL is refused when it is saved too. One saved before
fails each delivery as the endpoint's failed attempt (`remit.webhooks.sender`).
"""

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import yarl

from remit.config import PlatformConfig
from remit.core.errors import invalid

MAX_URL_LENGTH: Final = 2048
# DNS limits (RFC 1035 2.3.4), as IDNA-encoded: a name of at most 253 characters (without the
# trailing dot of a fully qualified one), each dot-separated label 1 to 63.
MAX_HOST_NAME_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(OSError):
    """A delivery would have connected to an address the policy refuses."""


@dataclass(frozen=True)
class UrlPolicy:
    """`allow_internal` is development mode; `allowed_hosts` names hosts (exact, any case) or
    networks (`10.0.0.0/8`, `127.0.0.1`) that are reachable even when internal."""

    allow_internal: bool
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def from_settings(cls, *, development: bool, allowed: Iterable[str]) -> "UrlPolicy":
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in (item.strip() for item in allowed):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                # Compared with hosts as aiohttp connects to them (`connection_host`).
                names.add((connection_host(f"http://{entry}/") or entry.lower()).rstrip("."))
        return cls(development, frozenset(names), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        return self.allow_internal or host.lower().rstrip(".") in self.allowed_hosts

    def address_allowed(self, host: str, address: IpAddress) -> bool:
        if self.host_allowed(host) or not is_internal(address):
            return True
        return any(address in network for network in self.allowed_networks)


def policy_for(config: PlatformConfig) -> UrlPolicy:
    return UrlPolicy.from_settings(
        development=config.development, allowed=config.webhook_allowed_hosts
    )


# Never reachable from the internet, whatever the `is_global` of the Python that runs remit
# says (older patch releases count some of them global): shared address space (carrier-grade
# NAT, cloud metadata such as 100.100.100.200, Tailscale), IETF protocol assignments,
# deprecated IPv6 site-local addresses, and local-use NAT64 prefixes.
_NEVER_GLOBAL: Final[tuple[IpNetwork, ...]] = tuple(
    ipaddress.ip_network(network)
    for network in ("100.64.0.0/10", "192.0.0.0/24", "fec0::/10", "64:ff9b:1::/48")
)


def is_internal(address: IpAddress) -> bool:
    """Anything but a globally reachable unicast address. An IPv6 address that carries an
    IPv4 one is judged by it too: an IPv4-mapped address is that IPv4 address, and a 6to4
    address (2002::/16) reaches the IPv4 address it embeds. (Teredo addresses, 2001::/32, are
    not global themselves.)"""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_internal(address.ipv4_mapped)
        if address.sixtofour is not None and is_internal(address.sixtofour):
            return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in network for network in _NEVER_GLOBAL)
    )


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def connection_host(url: str) -> str | None:
    """The host a request to `url` connects to, as aiohttp reads it (yarl's `raw_host`:
    lower case, IDNA-encoded); None if the URL has none or yarl cannot parse it."""
    try:
        return yarl.URL(url).raw_host
    except ValueError:
        return None


def _parse(url: str) -> yarl.URL:
    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"Invalid URL: must be at most {MAX_URL_LENGTH} characters.", "url",
                      code="url_invalid")  # fmt: skip
    try:
        # The parser aiohttp sends with (it raises ValueError on a malformed port or host).
        return yarl.URL(url)
    except ValueError:
        raise invalid(f"Invalid URL: {url}", "url", code="url_invalid") from None


def _written_host(url: str) -> str:
    """The host as the URL spells it, before IDNA normalisation."""
    try:
        return yarl.URL(url, encoded=True).raw_host or ""
    except ValueError:
        return ""


# A label the C resolver (inet_aton) reads as a number: decimal, octal with a leading 0, or
# hexadecimal after 0x. yarl has already lower-cased the host.
_NUMERIC_LABEL: Final = re.compile(r"0x[0-9a-f]*|[0-9]+", re.ASCII)


def _is_numeric_ipv4_form(host: str) -> bool:
    """Whether every label of the host is a number, however many labels and dots there are:
    an IPv4 address in some spelling, never a host name (a name such as `example.com.` has a
    label that is not a number)."""
    labels = [label for label in host.split(".") if label]
    return bool(labels) and all(_NUMERIC_LABEL.fullmatch(label) for label in labels)


def _is_loopback_name(host: str) -> bool:
    name = host.rstrip(".")
    return name in ("localhost", "localhost.localdomain") or name.endswith(".localhost")


def _host_name_problem(host: str) -> str | None:
    """Why the resolver would never look `host` (yarl's, IDNA-encoded) up, or None. yarl accepts
    an empty label and labels or names of any length, which the resolver refuses: with a
    UnicodeError from the `idna` codec it encodes a name with, or an unresolvable name."""
    name = host.removesuffix(".")
    if len(name) > MAX_HOST_NAME_LENGTH:
        return f"it is longer than {MAX_HOST_NAME_LENGTH} characters"
    labels = name.split(".")
    if any(not label for label in labels):
        return "it has an empty label (two dots in a row, or a leading dot)"
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        return f"it has a label (between dots) longer than {MAX_LABEL_LENGTH} characters"
    try:
        # The codec `socket.getaddrinfo` encodes a name with before resolving it.
        host.encode("idna")
    except UnicodeError as error:
        return f"it cannot be encoded as a domain name ({error})"
    return None


def validate_endpoint_url(url: str, policy: UrlPolicy) -> str:
    """The URL if an endpoint may use it; otherwise a precise `RemitError` on `url`."""
    url = url.strip()
    parsed = _parse(url)
    if parsed.scheme not in ("http", "https"):
        raise invalid("Invalid URL: the scheme must be http or https.", "url", code="url_invalid")
    if parsed.user is not None or parsed.password is not None:
        raise invalid("Invalid URL: it must not contain credentials (user:password@).", "url",
                      code="url_invalid")  # fmt: skip
    host = parsed.raw_host
    if not host:
        raise invalid("Invalid URL: it has no host.", "url", code="url_invalid")
    address = literal_address(host)
    problem = None if address is not None else _host_name_problem(host)
    if problem is not None:
        raise invalid(f"Invalid URL: its host is not a valid host name: {problem}.", "url",
                      code="url_invalid")  # fmt: skip
    if address is None and _is_numeric_ipv4_form(host):
        # Whatever the policy: aiohttp connects to none of these but the hexadecimal ones, and
        # those reach an address that the checks above read as a name.
        raise invalid(f"Invalid URL: its host {host} is an IPv4 address not written in "
                      "dotted-decimal form; write the address as four decimal numbers from 0 "
                      "to 255, without leading zeros or a trailing dot, such as 192.0.2.1.",
                      "url", code="url_invalid")  # fmt: skip
    if address is not None and not _written_host(url).isascii():
        # An address spelt so has no use but to slip past a check that reads it as a name.
        raise invalid(f"Invalid URL: its host is the IP address {address} written with "
                      "characters other than ASCII; write it in ASCII.", "url",
                      code="url_invalid")  # fmt: skip
    internal = _is_loopback_name(host) or (
        address is not None and not policy.address_allowed(host, address)
    )
    if internal and not policy.host_allowed(host):
        raise invalid(
            "Invalid URL: it points to a private or loopback address, which webhook "
            "endpoints may only use in development mode or when allowed by "
            "REMIT_WEBHOOK_ALLOWED_HOSTS.",
            "url",
            code="url_invalid",
        )
    return url


def check_literal_host(url: str, policy: UrlPolicy) -> None:
    """Before connecting: refuse a literal internal address or a loopback name, read as
    aiohttp will connect to it (a URL saved before that was so is caught here too)."""
    host = connection_host(url) or ""
    address = literal_address(host)
    if address is not None and not policy.address_allowed(host, address):
        raise BlockedAddressError(f"refused to connect to internal address {address}")
    if not policy.host_allowed(host) and _is_loopback_name(host):
        raise BlockedAddressError(f"refused to connect to {host}")
