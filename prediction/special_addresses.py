"""Which IP addresses are not the public internet: the IANA special-purpose registries, in full.

A URL given to a prediction is fetched by this machine, which can reach what its caller cannot: the
cloud's metadata service, this host's own services, a private network. Python's `ipaddress` flags follow
the registries only in part and change between Python versions (192.0.0.0/24 was missed), so the
registries are written out here, every entry refused whatever its "globally reachable" column says: no
weight or image is served from an anycast relay or a documentation prefix.

Sources: IANA IPv4 Special-Purpose Address Registry (iana-ipv4-special-registry, last updated 2024-03-27)
and IANA IPv6 Special-Purpose Address Registry (iana-ipv6-special-registry, last updated 2025-07-01),
https://www.iana.org/assignments/; multicast from RFC 5771 / RFC 4291. IPv6 outside global unicast
(2000::/3) is unassigned and refused too. Cloud metadata endpoints outside these ranges (Azure's
168.63.129.16) are listed by address.
"""

from __future__ import annotations

import ipaddress

__all__ = ["METADATA_ADDRESSES", "address_problem", "is_metadata_address"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Metadata and host services: AWS/GCP/Azure/OpenStack/Oracle/DigitalOcean (169.254.169.254), AWS IPv6,
# AWS ECS task metadata, Alibaba, Azure's host endpoint (WireServer), Oracle Cloud's 192.0.0.192.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
    )
)

_V4 = (
    ("0.0.0.0/8", 'the unspecified address or "this network" (0.0.0.0/8)'),
    ("10.0.0.0/8", "a private network address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    ("127.0.0.0/8", "a loopback address (this machine)"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private network address"),
    ("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
    ("192.0.2.0/24", "a documentation address (TEST-NET-1)"),
    ("192.31.196.0/24", "an AS112 service address"),
    ("192.52.193.0/24", "an AMT relay address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private network address"),
    ("192.175.48.0/24", "an AS112 service address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address (TEST-NET-2)"),
    ("203.0.113.0/24", "a documentation address (TEST-NET-3)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
)

_V6 = (
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address (this machine)"),
    ("64:ff9b:1::/48", "a local-use IPv4/IPv6 translation address"),
    ("100::/64", "a discard-only address"),
    ("100:0:0:1::/64", "a dummy IPv6 address"),
    ("2001::/23", "an IETF protocol assignment (2001::/23: Teredo, ORCHID, benchmarking, AS112, ...)"),
    ("2001:db8::/32", "a documentation address"),
    ("2620:4f:8000::/48", "an AS112 service address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment routing (SRv6) address"),
    ("fc00::/7", "a private network address (unique local)"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)

_REGISTRY: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(network), reason) for network, reason in (*_V4, *_V6)
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_problem(address: IPAddress) -> str | None:
    """Why `address` is not a public internet address, or None if it is one.

    An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`, NAT64
    `64:ff9b::/96`, IPv4-compatible `::a.b.c.d`) is judged by the IPv4 address it reaches.
    """
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_problem(embedded)
    for network, reason in _REGISTRY:
        if address.version == network.version and address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "an unassigned IPv6 address (outside 2000::/3)"
    return None


def is_metadata_address(address: IPAddress) -> bool:
    """Whether `address` reaches a cloud metadata service (directly or as an IPv6 form of the IPv4 one):
    such addresses are opened only by allowing everything, never by an allowed network that contains
    them (`fd00::/8` holds AWS's `fd00:ec2::254`, `100.64.0.0/10` Alibaba's `100.100.100.200`)."""
    if address in METADATA_ADDRESSES:
        return True
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is not None and embedded in METADATA_ADDRESSES


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (int(address) >> 32 == 0 and int(address) > 1):  # NAT64, IPv4-compatible
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
