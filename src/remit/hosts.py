"""The hosts remit's processes listen on and dial (REMIT_API_HOST, REMIT_CORE_HOST, ...).

A host is a name, an IPv4 address, or an IPv6 address with or without brackets (`::1` or
`[::1]`, as URLs and `host:port` targets write it). Inside remit it is held without brackets,
the form sockets and resolvers take; `Endpoint.target` puts them back where a `host:port`
needs them.

A name may resolve to several addresses. What dials one host and port (every gRPC channel but
one) leaves the name to gRPC's own resolver, which tries each address and follows changes. A
socket remit binds itself (the api's, and the probe that picks free ports for the core copies)
binds the first address the system's resolver gives. Only the round-robin target over the core
copies' own ports is resolved by remit (`remit.config.core_instances_target`), since gRPC's
resolver takes one port per target: at every address the name has, once, when the api starts.
"""

import errno
import ipaddress
import socket
from typing import Final

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# How many ports to try before giving up on one free at every address of a host.
_FREE_PORT_TRIES: Final = 20


def ip_literal(host: str) -> IpAddress | None:
    """The address `host` is, bracketed or not; None for a name."""
    try:
        return ipaddress.ip_address(unbracketed(host))
    except ValueError:
        return None


def unbracketed(host: str) -> str:
    """`[::1]` -> `::1`; anything else as it is."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def bracketed(host: str) -> str:
    """`::1` -> `[::1]`, for a `host:port`; a name or an IPv4 address as it is."""
    address = ip_literal(host)
    return f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else host


def host_problem(host: str) -> str | None:
    """Why `host` is no host, or None: brackets around anything but an IPv6 address, or a
    colon in anything else (a `host:port`, where only a host goes)."""
    address = ip_literal(host)
    if host.startswith("[") or host.endswith("]"):
        if isinstance(address, ipaddress.IPv6Address) and host.startswith("["):
            return None
        return "only an IPv6 address goes in brackets ([::1])"
    if ":" in host and address is None:
        return (
            "give the host alone, without a port (the port has a setting of its own); an IPv6 "
            "address may be given bare or in brackets"
        )
    return None


def resolved_addresses(host: str) -> list[str]:
    """Every address `host` resolves to, in the system resolver's order, each once (an IP
    address resolves to itself). A `socket.gaierror` when it does not resolve."""
    found = socket.getaddrinfo(unbracketed(host), None, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in found:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def bind_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple[object, ...]]:
    """The family and socket address to bind `host`'s first address at `port`."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        unbracketed(host), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, tuple(sockaddr)


def listen_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on `host` (its first address) at `port` now, as the
    system says it ("Address already in use", "Cannot assign requested address"); None when
    it could. A `socket.gaierror` when `host` does not resolve."""
    family, address = bind_address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As remit's servers bind: a port whose last connections linger in TIME_WAIT after
        # its server stopped is free, one a server listens on is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            return error.strerror or str(error)
    return None


def free_port(host: str) -> int:
    """A port nothing listens on at any address of `host` this machine has: a gRPC server given
    a name listens on each of its addresses. A `socket.gaierror` when `host` does not resolve;
    an OSError when no port is free at all of them."""
    bindable = [
        (family, tuple(sockaddr))
        for family, _, _, _, sockaddr in socket.getaddrinfo(
            unbracketed(host), 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    ]
    first_family, first_address = bindable[0]
    for _ in range(_FREE_PORT_TRIES):
        with socket.socket(first_family, socket.SOCK_STREAM) as sock:
            sock.bind(first_address)
            port = int(sock.getsockname()[1])
        if all(_free_at(family, address, port) for family, address in bindable[1:]):
            return port
    raise OSError(f"no port free at every address of {host} after {_FREE_PORT_TRIES} tries")


def _free_at(family: socket.AddressFamily, address: tuple[object, ...], port: int) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address[0], port, *address[2:]))
        except OSError as error:
            # An address this machine does not have is one no server binds either.
            return error.errno == errno.EADDRNOTAVAIL
    return True
