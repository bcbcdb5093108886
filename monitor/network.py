"""httpx's transport with its connections on asyncio's own streams instead of anyio's.

httpcore reaches the network through a "network backend" (its documented extension point); on
asyncio it picks anyio's, which opens a cancel scope around every read and write and looks up the
running event loop's library several times per call. Measured on 1,000 ~100 KB pages (A/B,
2026-12-05): a round of known sources spends 5-7% less CPU (1.54 s against 1.62 s with no change,
1.84 s against 1.97 s with 10% changed). Only direct connections go through here: where the
environment names a proxy (HTTPS_PROXY and the like, which httpx honours), httpx keeps its own
transport. tests/test_network.py fails if an httpx release stops using the pool given to it.

The streams map errors to httpcore's, as anyio's backend does, so httpx raises what it always
raised: a reset connection is a ReadError, a slow answer a ReadTimeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import urllib.request
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from monitor.lean_imports import without

with without("httpx._main", "trio"):  # see lean_imports
    import httpcore
    import httpx
from httpcore._utils import is_socket_readable  # what anyio's backend answers "is_readable" with

from monitor.redirects import ALLOW_HINT, non_public

# True while a link read from a public source's content is fetched (fetch.Fetcher.fetch_document).
# Its name was checked to be public before the request; a name can resolve elsewhere a moment
# later (DNS rebinding), so the address actually connected to is checked too.
public_peers_only: ContextVar[bool] = ContextVar("public_peers_only", default=False)
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's, and anyio's: an IPv6 address that hangs does not stall a host
READ_BUFFER = 256 * 1024  # asyncio pauses reading past twice this, unread
# httpcore's names for what a stream tells about itself -> asyncio's transport's names
EXTRA_INFO = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


class PeerRefused(httpcore.ConnectError):
    """A connection made to a non-public address where only public ones may be (public_peers_only)."""


def direct_transport(ssl_context: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport | None:
    """An AsyncioTransport; None when the environment names a proxy: an httpx client given a
    transport would ignore the proxy, and left to itself uses it."""
    proxies = urllib.request.getproxies()  # what httpx reads the environment with; it uses these keys
    if any(proxies.get(scheme) for scheme in ("http", "https", "all")):
        return None
    return AsyncioTransport(ssl_context, limits)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport, its connection pool built on AsyncioBackend."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits):
        super().__init__(verify=ssl_context, limits=limits)
        # httpx has no argument for the backend; its pool is httpcore's public class, rebuilt with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader, self._writer, self._host = reader, writer, host
        self._peer_kind: str | None = None  # found out when a request needs it

    def refuse_non_public_peer(self) -> None:
        """Raise PeerRefused if the connection is to a non-public address (see public_peers_only)."""
        if self._peer_kind is None:
            self._peer_kind = _non_public_peer(self._writer)
        if self._peer_kind:
            raise PeerRefused(
                f"refused a link to {self._host}: a {self._peer_kind} address when connected to{ALLOW_HINT}"
            )

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout() from None
        except OSError:  # the connection broke: httpx names it (fetch.SILENT_ERRORS)
            raise httpcore.ReadError() from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if public_peers_only.get():  # a kept-alive connection, opened for a request not checked
            self.refuse_non_public_peer()
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout() from None
        except OSError:
            raise httpcore.WriteError() from None

    async def aclose(self) -> None:
        _close(self._writer)

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            _close(self._writer)
            raise httpcore.ConnectTimeout() from None
        except OSError as exc:  # ssl.SSLError is one: "certificate verify failed" reaches the user
            _close(self._writer)
            raise httpcore.ConnectError(str(exc)) from None
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore's check that an idle keep-alive connection was not closed
            return self._reader.at_eof() or is_socket_readable(self._writer.get_extra_info("socket"))
        return self._writer.get_extra_info(EXTRA_INFO[info]) if info in EXTRA_INFO else None


def _non_public_peer(writer: asyncio.StreamWriter) -> str:
    """The kind of non-public address the connection went to ('' for an internet one)."""
    peer = writer.get_extra_info("peername") or ("",)
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%")[0])  # fe80::1%eth0: its zone aside
    except ValueError:
        return "unknown"
    return non_public(address)


def _close(writer: asyncio.StreamWriter) -> None:
    """Close the connection now. A TLS transport's close() would send close_notify and keep the
    socket until the server answers, up to 30 s: a server that hangs (the one a read timed out
    on) would hold a file descriptor that long. anyio's backend drops TLS connections likewise."""
    transport = writer.transport
    if transport.get_extra_info("ssl_object") is not None:
        transport.abort()
    else:
        transport.close()


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[tuple[Any, ...]] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                    limit=READ_BUFFER,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout() from None
        except OSError as exc:  # refused, unreachable, or a name that does not resolve
            raise httpcore.ConnectError(str(exc)) from None
        stream = AsyncioStream(reader, writer, host)
        if public_peers_only.get():  # before anything is sent, a TLS handshake included
            try:
                stream.refuse_non_public_peer()
            except PeerRefused:
                _close(writer)
                raise
        sock: socket.socket = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return stream

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[tuple[Any, ...]] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("connections over a Unix socket are not used by the monitor")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
