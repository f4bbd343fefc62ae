"""One spelling per IP address, so a value list item and a payment's IP compare equal.

An address has many spellings: `2001:0DB8:0000::1` and `2001:db8::1`, or `::ffff:203.0.113.5`
(an IPv4 address as an IPv6 socket reports it) and `203.0.113.5`. Value list items, the
payment's `:ip_address:` and its velocity counter all use the canonical one, and so does a
token's `client_ip` (remit.payment_methods.domain), so an address reads the same wherever
remit shows it.

An IPv6 address with a zone (`fe80::1%eth0`) is no client's address anywhere: the zone names a
network interface of the machine that saw the address, which means nothing on another machine
or to a rule. It is refused wherever an address is taken (a list item, a rule's literal, a
token's `client_ip`), and a payment's IP spelt with one is no IP, as anything else that is not
an address. Not stripped: two hosts on different links share `fe80::1` and are told apart only
by their zones, so the bare address would make them one client.
"""

import ipaddress
from typing import Final

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ZONE_REFUSED: Final = (
    "an address with a zone (%...) names a network interface of the machine that saw it, "
    "not a client"
)


def client_address(text: str) -> IpAddress | None:
    """`text` as a client's IP address, exactly as written; None for anything that is not one,
    an IPv6 address with a zone included."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if has_zone(address):
        return None
    return address


def canonical_ip(text: str) -> str | None:
    """The canonical form of `text` (`canonical_form`), spaces around it ignored; None for
    anything that is not a client's IP address (`client_address`)."""
    address = client_address(text.strip())
    return None if address is None else canonical_form(address)


def has_zone(address: IpAddress) -> bool:
    return isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None


def zoned(text: str) -> bool:
    """Whether `text` is an IPv6 address with a zone: what makes it no client's address."""
    try:
        return has_zone(ipaddress.ip_address(text.strip()))
    except ValueError:
        return False


def canonical_form(address: IpAddress) -> str:
    """The compressed, lower-case form; an IPv4-mapped IPv6 address as its IPv4 address
    (Python 3.11 would write `::ffff:cb00:7105`, which no caller ever sends)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
