"""One spelling per IP address, so a value list item and a payment's IP compare equal.

An address has many spellings: `2001:0DB8:0000::1` and `2001:db8::1`, or `::ffff:203.0.113.5`
(an IPv4 address as an IPv6 socket reports it) and `203.0.113.5`. Value list items, the
payment's `:ip_address:` and its velocity counter all use the canonical one, and so does a
token's `client_ip` (remit.payment_methods.domain), so an address reads the same wherever
remit shows it.
"""

import ipaddress


def canonical_ip(text: str) -> str | None:
    """The canonical form of `text` (`canonical_form`); None for anything that is not an IP
    address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return canonical_form(address)


def canonical_form(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The compressed, lower-case form; an IPv4-mapped IPv6 address as its IPv4 address
    (Python 3.11 would write `::ffff:cb00:7105`, which no caller ever sends)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
