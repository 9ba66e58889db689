"""Whether a Host header is one authority: a hostname or an IP literal, and an optional port.

Pure, no I/O. werkzeug builds absolute URLs (a redirect's Location) from the Host header, and
gunicorn joins two Host headers into one value with a comma (``a.example,b.example``): a value
that names no single server is refused rather than used.
"""

from __future__ import annotations

import ipaddress
import re

# RFC 1123 labels (and the underscore, which real names such as compose projects carry), up to
# 253 characters in all, with an optional trailing dot (a fully qualified name).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\.?\Z)(?:{_LABEL}\.)*{_LABEL}\.?\Z", re.ASCII | re.DOTALL)
_AUTHORITY = re.compile(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?\Z", re.ASCII)
_NUMBER = re.compile(r"(?:[0-9]+|0[xX][0-9A-Fa-f]*)\Z")
MAX_PORT = 65535


def is_valid_authority(value: str) -> bool:
    """``host``, ``host:port``, ``1.2.3.4:port`` or ``[::1]:port``; nothing else."""
    match = _AUTHORITY.match(value)
    if match is None:
        return False
    port = match["port"]
    if port is not None and int(port) > MAX_PORT:
        return False
    if match["ipv6"] is not None:
        return _is_ip(ipaddress.IPv6Address, match["ipv6"])
    name = match["name"]
    if _HOSTNAME.match(name) is None:
        return False
    # A name ending in a number is an IPv4 address to a browser's URL parser (even 1.2.3 or
    # 0x7f.1): only the dotted quad is taken, so the name means one thing to everyone.
    last = name.rstrip(".").rpartition(".")[2]
    return _NUMBER.match(last) is None or _is_ip(ipaddress.IPv4Address, name)


def _is_ip(kind, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True
