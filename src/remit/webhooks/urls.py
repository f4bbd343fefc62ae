"""Which URLs an endpoint may have, and which addresses a delivery may connect to.

Endpoint URLs are http or https with a host and no credentials. Outside development mode a
delivery must not reach loopback, private, link-local or otherwise internal addresses (so a
webhook cannot be used to probe the network remit runs in) unless the operator allows the host
with REMIT_WEBHOOK_ALLOWED_HOSTS. Literal addresses are checked when the URL is saved and before
each delivery; host names are checked on every resolution, at connection time.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from remit.config import PlatformConfig
from remit.core.errors import invalid

MAX_URL_LENGTH: Final = 2048
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
                names.add(entry.lower())
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


def is_internal(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def literal_address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise invalid(f"Invalid URL: must be at most {MAX_URL_LENGTH} characters.", "url",
                      code="url_invalid")  # fmt: skip
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        raise invalid(f"Invalid URL: {url}", "url", code="url_invalid") from None
    return parts


def validate_endpoint_url(url: str, policy: UrlPolicy) -> str:
    """The URL if an endpoint may use it; otherwise a precise `RemitError` on `url`."""
    parts = _split(url.strip())
    if parts.scheme not in ("http", "https"):
        raise invalid("Invalid URL: the scheme must be http or https.", "url", code="url_invalid")
    if parts.username is not None or parts.password is not None:
        raise invalid("Invalid URL: it must not contain credentials (user:password@).", "url",
                      code="url_invalid")  # fmt: skip
    host = parts.hostname
    if not host:
        raise invalid("Invalid URL: it has no host.", "url", code="url_invalid")
    if not policy.host_allowed(host):
        address = literal_address(host)
        loopback_name = host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or (
            host.lower().rstrip(".").endswith(".localhost")
        )
        if loopback_name or (address is not None and not policy.address_allowed(host, address)):
            raise invalid(
                "Invalid URL: it points to a private or loopback address, which webhook "
                "endpoints may only use in development mode or when allowed by "
                "REMIT_WEBHOOK_ALLOWED_HOSTS.",
                "url",
                code="url_invalid",
            )
    return url.strip()


def check_literal_host(url: str, policy: UrlPolicy) -> None:
    """Before connecting: refuse a literal internal address (resolution is not involved)."""
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is not None and not policy.address_allowed(host, address):
        raise BlockedAddressError(f"refused to connect to internal address {address}")
    lowered = host.lower().rstrip(".")
    if not policy.host_allowed(host) and (lowered == "localhost" or lowered.endswith(".localhost")):
        raise BlockedAddressError(f"refused to connect to {host}")
