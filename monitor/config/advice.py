"""What a valid sources.toml may still get wrong with a real regulator: warnings, not errors."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from monitor.models import Config, Source

POLITE_INTERVAL = 60.0  # seconds; more often, a regulator's site may take the monitor for a scraper


def warnings(config: Config) -> list[str]:
    """One line per source polled more often than POLITE_INTERVAL on a public site (a site on the
    operator's own machine or network, such as a test server, may be polled as often as wanted)."""
    return [
        f"{config.path}: source {source.id!r} polls {urlsplit(source.url).hostname} every "
        f"{_seconds(_shortest(source))}: a regulator may block a client that polls this often "
        f"({POLITE_INTERVAL:g}s or more is polite)"
        for source in config.sources
        if _shortest(source) < POLITE_INTERVAL and not _own_network(urlsplit(source.url).hostname or "")
    ]


def _shortest(source: Source) -> float:
    return min(source.interval, source.off_hours_interval or source.interval)


def _own_network(host: str) -> bool:
    host = host.rstrip(".")  # "localhost." is localhost
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = _short_ipv4(host)
    if address is None:  # a name: not looked up here (validate runs without the network)
        return False
    return not address.is_global


def _short_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """127.1 or 0x7f.1: IPv4 as the system's resolver also reads it (inet_aton), which connects there."""
    if not host or not all(c in "0123456789abcdefx." for c in host.lower()) or not host[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _seconds(value: float) -> str:
    return f"{value:g}s"
