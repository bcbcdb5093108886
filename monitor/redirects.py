"""Which redirects a fetch may follow: http(s) only, within the source's site, and never from the
internet into the operator's own network (a compromised page must not make the bot probe it).
The links a source's content leads to (detail pages, PDFs) are held to the same two rules but the site.

Used by fetch.py as an httpx response hook, so every hop of a redirect chain is checked before it
is followed. Each hop is judged against the hop before it, which for a chain that never leaves the
site is the same as judging it against the configured URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

from monitor.errors import FetchError
from monitor.lean_imports import without

with without("httpx._main"):  # see lean_imports
    import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_HINT = " (set [settings] allow_private_redirects = true if this is intended)"
Resolver = Callable[[str], Awaitable[list[Address]]]


class RedirectRefused(FetchError):
    """A redirect the fetch policy does not follow; the source fails with the reason."""


def same_site(a: str, b: str) -> bool:
    """Whether two hosts belong to one site: equal, or one a subdomain of the other ('www.' aside).

    www.sfc.hk, sfc.hk and apps.sfc.hk are one site; www.hkma.gov.hk and www.info.gov.hk are not.
    Without the public-suffix list a parent must still have a dot, so nothing is "the same site"
    as a bare top-level domain. IP addresses are only the same site as themselves.
    """
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if a == b:
        return True
    if _ip(a) or _ip(b):
        return False
    a, b = a.removeprefix("www."), b.removeprefix("www.")
    return a == b or _under(a, b) or _under(b, a)


def _under(child: str, parent: str) -> bool:
    return "." in parent and child.endswith("." + parent)


def non_public(address: Address) -> str:
    """What kind of non-public address this is ('' for an ordinary internet address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    ):
        if flag:
            return kind
    return ""


async def system_resolver(host: str) -> list[Address]:
    """The addresses a host name resolves to (an IP literal is itself); [] when it does not resolve."""
    literal = _ip(host)
    if literal:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []  # the request itself will fail with a clear connection error
    return [a for a in (_ip(info[4][0]) for info in infos) if a]


async def refusal(
    current: httpx.URL, target: httpx.URL, allow_private: bool, resolve: Resolver = system_resolver
) -> str:
    """Why the redirect from `current` to `target` is not followed, or '' when it may be."""
    if target.scheme not in ("http", "https"):
        return f"refused a redirect to a {target.scheme}: address ({_short(target)})"
    kind = "" if allow_private else await _into_private(current, target, resolve)
    if kind:
        return f"refused a redirect from {current.host} to {target.host}, a {kind} address{ALLOW_HINT}"
    if not same_site(current.host, target.host):
        return (
            f"redirected to another site: {_short(target)} (from {current.host}); "
            "if the source has moved, update its url"
        )
    return ""


async def link_refusal(
    source: httpx.URL, link: httpx.URL, allow_private: bool, resolve: Resolver = system_resolver
) -> str:
    """Why a link read from a source's content (an item's detail page, a PDF a release links to) is
    not fetched, or '' when it may be. As for a redirect: http(s) only, and not into the operator's
    network from the internet. Another site is fine: a release may link another bureau's PDF."""
    if link.scheme not in ("http", "https"):
        return f"refused a link to a {link.scheme}: address ({_short(link)})"
    kind = "" if allow_private else await _into_private(source, link, resolve)
    if kind:
        return f"refused a link from {source.host} to {link.host}, a {kind} address{ALLOW_HINT}"
    return ""


async def is_public(host: str, resolve: Resolver = system_resolver) -> bool:
    """Whether `host` is on the internet (a name that does not resolve counts as such: its
    request fails on its own)."""
    return not _first_non_public(await resolve(host))


async def _into_private(current: httpx.URL, target: httpx.URL, resolve: Resolver) -> str:
    """The kind of non-public address `target` has, when `current`'s is public: a source configured
    on the operator's own network may go on within it."""
    kind = _first_non_public(await resolve(target.host))
    return kind if kind and not _first_non_public(await resolve(current.host)) else ""


def _first_non_public(addresses: Iterable[Address]) -> str:
    return next((kind for kind in map(non_public, addresses) if kind), "")


def redirect_guard(allow_private: bool, resolve: Resolver = system_resolver):
    """An httpx response hook that raises RedirectRefused before a refused redirect is followed."""

    async def check(response: httpx.Response) -> None:
        target = redirect_target(response)
        if target is None:
            return
        reason = await refusal(response.request.url, target, allow_private, resolve)
        if reason:
            raise RedirectRefused(reason)

    return check


def redirect_target(response: httpx.Response) -> httpx.URL | None:
    """Where a redirect response points, resolved as httpx resolves it; None when it is not one."""
    if not response.has_redirect_location:
        return None
    try:
        url = httpx.URL(response.headers["location"])
    except httpx.InvalidURL:
        return None  # httpx refuses it itself, with its own error
    if url.scheme in ("http", "https") and not url.host:
        url = url.copy_with(host=response.request.url.host)
    return response.request.url.join(url) if url.is_relative_url else url


def _ip(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _short(url: httpx.URL) -> str:
    text = str(url)
    return text if len(text) <= 120 else text[:119] + "…"
