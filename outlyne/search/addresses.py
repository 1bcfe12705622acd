"""Which network addresses a thumbnail may be fetched from: public unicast only, in every spelling.

`ipaddress.is_global` alone is not enough: Python 3.11 calls multicast, `::127.0.0.1` and `64:ff9b::/96`
"global", and IPv6 has several standard ways to carry an IPv4 address inside it (v4-mapped,
v4-compatible, SIIT-translated, NAT64, 6to4, Teredo): each is unwrapped and the IPv4 address inside must
be public too, so `64:ff9b::7f00:1` or `2002:7f00:1::1` cannot reach this machine's loopback.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT ::ffff:0:a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the low 32 bits are the target
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): private by definition


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries by a standard embedding (empty when none)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _V4_COMPATIBLE or ip in _V4_TRANSLATED or ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)  # (server, client): both must be public
    return []


def is_public_address(address: str | IPAddress, *, allow_loopback: bool = False) -> bool:
    """True for a public unicast address. `allow_loopback` (tests serve thumbnails from 127.0.0.1)
    admits loopback, in any spelling, and nothing else that is not public."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        carried = embedded_ipv4(ip)
        if carried:
            return all(_is_public(v4, allow_loopback) for v4 in carried)
    return _is_public(ip, allow_loopback)


def _is_public(ip: IPAddress, allow_loopback: bool) -> bool:
    if ip.is_loopback:
        return allow_loopback
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_private
        and not ip.is_link_local
        and not ip.is_unspecified
        and not (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
    )
