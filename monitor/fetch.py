"""Source -> Page: one GET with retries, per-host politeness, conditional requests and a size cap."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from http.cookiejar import CookieJar
from urllib.parse import urlsplit

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from monitor.answers import RetryableFetchError, check_status, cut_short, refuse_soft_404, unsized
from monitor.charset import content_type_charset, decode
from monitor.errors import FetchError
from monitor.lean_imports import without
from monitor.models import MARKUP, Page, Previous, Settings, Source
from monitor.network import PeerRefused, direct_transport, public_peers_only
from monitor.noise import StableDigest, stable_digest
from monitor.redirects import is_public, link_refusal, redirect_guard

with without("httpx._main"):  # see lean_imports
    import httpx

# Requests (so connections in use) at once in all, whatever the number of hosts, as the single
# connection pool of earlier versions allowed: file descriptors stay far below the usual 1,024.
MAX_CONNECTIONS = 64
KEPT_HEADERS = ("content-type", "content-length", "etag", "last-modified", "date", "cache-control")
GZIP_MAGIC = b"\x1f\x8b"
# Not httpx's default, which adds zstd (installed for the store): httpx inflates a whole network read
# at once before the size cap can see it, and 16 KB of zstd become gigabytes in one read.
ACCEPTED_CODINGS = "gzip, deflate"
# httpx errors that carry no message of their own (a reset connection is a bare ReadError).
SILENT_ERRORS = {
    "ReadError": "the connection broke while the answer was being read",
    "WriteError": "the connection broke while the request was being sent",
}


# Set by a round's worker (run.poll_sources) in the task that polls a host's sources: called when a
# fetch of the task is about to wait before another attempt. The wait holds no host slot, and the
# worker's host should not wait with it: the call starts another worker for the host meanwhile.
retry_waits: ContextVar[Callable[[], None] | None] = ContextVar("retry_waits", default=None)


@lru_cache(maxsize=8192)  # every source's URL, every round
def host_of(url: str) -> str:
    """What `per_host` counts requests by."""
    return urlsplit(url).netloc.lower()


HostSlots = dict[str, asyncio.Semaphore]


@asynccontextmanager
async def open_fetcher(settings: Settings, host_slots: HostSlots | None = None) -> AsyncIterator[Fetcher]:
    """A round's fetcher; its HTTP clients are closed when the round ends. `host_slots`: the
    per-host limits shared with other rounds running at the same time (the long-running run's)."""
    async with AsyncExitStack() as closing:
        yield Fetcher(settings, closing, host_slots)


class Fetcher:
    """Fetches sources, at most `per_host` requests at a time to any one host and MAX_CONNECTIONS
    in all, over one HTTP/1.1 keep-alive client per host (sharing one cookie jar). One pool for
    every host cost more CPU than the requests: httpcore scans all of a pool's connections on
    every request and probes each idle one's socket."""

    def __init__(self, settings: Settings, closing: AsyncExitStack, host_slots: HostSlots | None = None):
        self._settings = settings
        self._closing = closing
        self._hosts: HostSlots = {} if host_slots is None else host_slots
        self._connections = asyncio.Semaphore(MAX_CONNECTIONS)
        self._in_flight: Counter[str] = Counter()
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._cookies = CookieJar()
        self._tls: ssl.SSLContext | None = None  # loading the CA bundle takes ~20 ms: once a round
        self._public_hosts: dict[str, bool] = {}  # a source's host: looked up once a round

    async def release(self, host: str) -> None:
        """Close `host`'s client, and so its idle keep-alive connections, once its sources are
        done (no request to it in flight): a round of many hosts does not keep them all open. A
        later request to the host (another source's detail page) opens a new client."""
        if not self._in_flight[host] and (client := self._clients.pop(host, None)) is not None:
            await client.aclose()

    def _client(self, host: str) -> httpx.AsyncClient:
        client = self._clients.get(host)
        if client is None:
            self._tls = self._tls or httpx.create_ssl_context()
            # Room for a redirect to another host; and keep-alive for every connection: httpcore
            # closes idle ones as soon as the pool holds more than max_keepalive_connections.
            connections = max(1, self._settings.per_host) + 2
            limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
            client = httpx.AsyncClient(
                timeout=self._settings.timeout,
                follow_redirects=True,
                max_redirects=self._settings.max_redirects,
                headers={"User-Agent": self._settings.user_agent, "Accept-Encoding": ACCEPTED_CODINGS},
                transport=direct_transport(self._tls, limits),
                limits=limits,  # with verify: for httpx's own transport, to a proxy the environment names
                event_hooks={"response": [redirect_guard(self._settings.allow_private_redirects)]},
                verify=self._tls,
                cookies=self._cookies,  # as one client: a cookie set for sfc.hk reaches apps.sfc.hk
            )
            self._closing.push_async_callback(client.aclose)
            self._clients[host] = client
        return client

    async def fetch_document(self, source: Source, url: str) -> Page:
        """An item's detail page, content API answer or PDF: a plain GET with the document size cap.
        Its URL comes from the content (a feed item's link, a PDF link): checked as a redirect is."""
        origin = httpx.URL(source.url)
        try:
            reason = await link_refusal(origin, httpx.URL(url), self._settings.allow_private_redirects)
        except httpx.InvalidURL as exc:
            raise FetchError(f"not a URL that can be fetched: {url[:120]!r} ({exc})") from None
        if reason:
            raise FetchError(reason)
        request = replace(source, url=url, method="GET", body="", params=())
        if not self._settings.allow_private_redirects and origin.host not in self._public_hosts:
            self._public_hosts[origin.host] = await is_public(origin.host)
        checked = public_peers_only.set(self._public_hosts.get(origin.host, False))
        try:
            return await self.fetch(request, document=True)
        finally:
            public_peers_only.reset(checked)

    async def fetch(self, source: Source, last: Previous | None = None, document: bool = False) -> Page:
        """`last`: what the store has of the source's last body, for a conditional GET and a
        cheaper noise digest."""
        last = last or Previous()
        first_failure: RetryableFetchError | None = None
        try:  # nearly every request succeeds at once; tenacity's loop costs ~70 us a request (bench/)
            return await self._get(source, last, document)
        except RetryableFetchError as error:
            first_failure = error
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(self._worth_retrying),
            before_sleep=_waiting_to_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_failure is not None:  # attempt 1 was the request above: tenacity decides on it
                    try:
                        raise first_failure
                    finally:  # no local keeps it: its traceback would hold this frame in a cycle
                        first_failure = None
                return await self._get(source, last, document)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _worth_retrying(self, error: BaseException) -> bool:
        """Network trouble, 429 and 5xx; not when the server asks for a longer wait than we allow
        (the source fails now with that reason and is retried at its next poll)."""
        if not isinstance(error, RetryableFetchError):
            return False
        return error.retry_after is None or error.retry_after <= self._settings.max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableFetchError) and error.retry_after is not None:
            return min(error.retry_after, self._settings.max_retry_after)
        return self._settings.retry_backoff * 2 ** (state.attempt_number - 1)

    @asynccontextmanager
    async def _sending(self, host: str) -> AsyncIterator[None]:
        self._in_flight[host] += 1
        try:
            yield
        finally:
            self._in_flight[host] -= 1

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(max(1, self._settings.per_host))
        return self._hosts[host]

    async def _get(self, source: Source, last: Previous, document: bool) -> Page:
        headers, validators = {}, last.validators
        payload = source.body.encode("utf-8") if source.body else None
        if payload:
            headers["Content-Type"] = "application/json"
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        fetched_at = datetime.now(UTC).isoformat(timespec="seconds")
        started = time.monotonic()
        timeout = self._settings.timeout
        try:
            host = host_of(source.url)
            async with self._host_slot(host), self._connections, self._sending(host):
                async with asyncio.timeout(timeout * 3):  # a server trickling bytes forever
                    async with self._client(host).stream(
                        source.method,
                        source.url,
                        headers=headers,
                        params=dict(source.params) or None,
                        content=payload,
                    ) as response:
                        check_status(response, self._settings.max_retry_after, document)
                        cap = self._settings.document_max_bytes if document else self._settings.max_bytes
                        setting = "document_max_bytes" if document else "max_bytes"
                        body = (
                            b"" if response.status_code == 304 else await self._read(response, cap, setting)
                        )
        except TimeoutError:
            raise RetryableFetchError(f"timed out after {timeout * 3:g}s reading the body") from None
        except httpx.TooManyRedirects:
            raise FetchError(
                f"too many redirects (more than {self._settings.max_redirects}; a redirect loop?)"
            ) from None
        except httpx.TimeoutException:
            raise RetryableFetchError(f"timed out after {timeout:g}s") from None
        except httpx.DecodingError as exc:
            raise FetchError(f"body cannot be decoded ({exc})") from None
        except httpx.TransportError as exc:
            if isinstance(exc.__cause__, PeerRefused):  # asking again would not move the address
                raise FetchError(str(exc.__cause__)) from None
            detail = str(exc) or SILENT_ERRORS.get(type(exc).__name__, "")
            raise RetryableFetchError(
                f"connection failed: {type(exc).__name__}: {detail}".rstrip(": ")
            ) from None
        duration_ms = int((time.monotonic() - started) * 1000)
        kept = {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers}
        markup = source.kind in MARKUP
        label = content_type_charset(response.headers.get("content-type", ""))
        # The charset label is part of what was read: the same bytes under a corrected label are read
        # again (a Big5 feed once served as ISO-8859-1 would otherwise keep its garbled snapshot).
        config = f"{source!r} {label}" if label else repr(source)
        stable = stable_digest(body, config, markup, StableDigest(last.stable_sha256, last.noise))
        # The last body but for its noise was decoded and passed the soft-404 check last time, and
        # nothing will read it now: decoding 100 KB costs ~0.06 ms of a no-change source's ~1.5.
        same = bool(last.stable_sha256) and stable.sha256 == last.stable_sha256
        text, encoding = ("", "") if not body or same or body.startswith(b"%PDF-") else decode(body, label)
        if body.startswith(GZIP_MAGIC) and not same:  # read as text, it would be "layout changed?"
            raise FetchError("the body is gzip data the server did not label (no Content-Encoding: gzip)")
        if text and (markup or document):
            refuse_soft_404(text, watched=markup)
            if markup and unsized(response) and cut_short(body):
                raise RetryableFetchError("the answer ended before </html> and gave no length (cut short?)")
        return Page(
            source_id=source.id,
            url=source.url,
            final_url=str(response.url),
            status=response.status_code,
            headers=kept,
            body=body,
            text=text,
            encoding=encoding,
            fetched_at=fetched_at,
            duration_ms=duration_ms,
            sha256=hashlib.sha256(body).hexdigest(),
            stable_sha256=stable.sha256,
            noise=stable.noise,
            not_modified=response.status_code == 304,
        )

    async def _read(self, response: httpx.Response, cap: int, setting: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(_too_big(cap, setting))
        body = bytearray()
        async for chunk in response.aiter_bytes():  # decompressed: a gzip bomb hits the cap too
            body += chunk
            if len(body) > cap:
                raise FetchError(_too_big(cap, setting))
        return bytes(body)


def _waiting_to_retry(state: RetryCallState) -> None:
    waiting = retry_waits.get()
    if waiting is not None:
        waiting()


def _too_big(cap: int, setting: str) -> str:
    size = f"{cap / 1_048_576:g} MB" if cap >= 1_048_576 else f"{cap:,} bytes"
    return f"body larger than {size} (raise [settings] {setting} if this is expected)"
