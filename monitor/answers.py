"""What an HTTP answer must be to count as the page: a status to read, a body not compressed in
a way that was not asked for, a type that can be it, not an error page dressed as a 200, not cut short."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime

from monitor.errors import FetchError
from monitor.lean_imports import without

with without("httpx._main"):  # see lean_imports
    import httpx

TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
SOFT_404 = re.compile(r"\b404\b|page not found|not found|找不到|未能找到|頁面不存在", re.I)
# A 200 whose <title> names a maintenance, sign-in or bot-check page: the content is not there.
NOT_THE_PAGE = re.compile(
    r"(?:system|site|scheduled|under|website) maintenance|maintenance (?:in progress|notice|mode)"
    r"|service (?:temporarily )?unavailable|temporarily unavailable|just a moment|attention required"
    r"|access denied|\blog ?in\b|\bsign ?in\b|系統維護|系統維修|網站維護|暫停服務|登入|請稍候",
    re.I,
)
# Compressions a server may send anyway: httpx inflates zstd in one piece, and leaves the others as
# they are, read as text they are garbage. (A made-up value, "none" or "UTF-8", is ignored as ever.)
UNASKED_CODINGS = ("zstd", "br", "compress", "x-compress", "x-gzip")
# Where an HTML page ends: an answer without a length that stops before it was cut short.
HTML_END = re.compile(rb"</html\s*>", re.I)
PAGE_END = re.compile(rb"</(?:html|body)\s*>", re.I)
# Not the page's content: a script cut short runs to the end; a comment is taken first, so a
# "<script" written inside one does not.
NOT_CONTENT = re.compile(
    rb"<!--(?:-?>|.*?(?:--!?>|\Z))|<(script|style|noscript)(?=[\s>/]).*?(?:</\1\s*>|\Z)", re.I | re.S
)
WRONG_TYPES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip")


class RetryableFetchError(FetchError):
    """A failure worth another attempt: network trouble, 429 or a 5xx."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def check_status(response: httpx.Response, max_retry_after: float, document: bool = False) -> None:
    """Raise unless the answer is one to read: retryable for 429 and 5xx, else a FetchError."""
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = retry_after_seconds(response.headers.get("retry-after", ""))
        reason = f"HTTP {status} {response.reason_phrase}".strip()
        if retry_after is not None and retry_after > max_retry_after:
            reason += f" (Retry-After {retry_after:.0f}s: longer than max_retry_after, not retried now)"
        raise RetryableFetchError(reason, retry_after)
    if status >= 400:
        raise FetchError(f"HTTP {status} {response.reason_phrase}".strip())
    if status == 304:
        asked = response.request.headers
        if "if-none-match" not in asked and "if-modified-since" not in asked:
            # nothing to be "not modified" from: taken as a success, the source would never baseline
            raise FetchError("HTTP 304 Not Modified, though the request named no version it has")
        return
    if status == 206:  # no range was asked for: a part of the answer is not the answer
        raise FetchError("HTTP 206 Partial Content, though the whole page was asked for")
    codings = [c.strip() for c in response.headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c.lower() != "identity"]
    if len(codings) > 1:  # httpx would inflate each layer whole: 3 KB can become gigabytes
        raise FetchError(f"refused a body compressed {len(codings)} times over ({', '.join(codings)})")
    if codings and codings[0].lower() in UNASKED_CODINGS:
        raise FetchError(f"refused a body compressed with {codings[0]}, which was not asked for")
    content_type = response.headers.get("content-type", "").lower()
    if content_type.startswith(WRONG_TYPES) and not (document and "pdf" in content_type):
        raise FetchError(f"unexpected content type {content_type.split(';')[0]}")


def refuse_other_page(text: str, item_title: str) -> None:
    """A release's own page whose <title> names a maintenance, sign-in or bot-check page (a redirect
    to a login form, a maintenance notice served with 200): not its text, which a later round reads.
    Unless the release's title names one too: an HKMA fraud alert about a "login screen"."""
    match = TITLE.search(text[:8192])
    title = " ".join(match[1].split())[:80] if match else ""
    if title and NOT_THE_PAGE.search(title) and not NOT_THE_PAGE.search(item_title):
        raise FetchError(f'not the page: HTTP 200 but its title is "{title}" (maintenance or sign-in?)')


def refuse_soft_404(text: str, watched: bool) -> None:
    """A 200 whose <title> says 'not found' is an error page, not content that was removed. On a
    watched listing or page (not a release's own page: "…internet banking login screen…" is an
    HKMA fraud alert), a title naming a maintenance, sign-in or bot-check page is not it either."""
    match = TITLE.search(text[:8192])
    if not match:
        return
    title = " ".join(match[1].split())[:80]
    if SOFT_404.search(title):
        raise FetchError(f'soft 404: HTTP 200 but the page title is "{title}"')
    if watched and NOT_THE_PAGE.search(title):
        raise FetchError(
            f'not the page: HTTP 200 but its title is "{title}" (maintenance, sign-in or bot check?)'
        )


def cut_short(body: bytes) -> bool:
    """An HTML body that stops before `</html>` and not after a tag: cut mid-text or mid-tag. (HTML
    may leave `</html>` out; a page that does still ends with the '>' of its last tag.)"""
    return not ends_html(body) and not body.rstrip().endswith(b">")


def ends_html(body: bytes) -> bool:
    """Whether the body ends with `</html>` (in its last 4 KB, scripts aside)."""
    return _ends_with(HTML_END, body)


def ends_page(body: bytes) -> bool:
    """Whether the body ends with `</body>` or `</html>`: all of the page's content came."""
    return _ends_with(PAGE_END, body)


def _ends_with(end: re.Pattern[bytes], body: bytes) -> bool:
    """Scripts, styles and comments are left out: a script may write "</body></html>" for a printable
    copy (a page cut after it is not whole), and a proxy may append kilobytes of them after the
    page's end (it is)."""
    body = NOT_CONTENT.sub(b"", body)
    return end.search(body, max(0, len(body) - 4096)) is not None


def unsized(response: httpx.Response) -> bool:
    """The body ran until the server closed the connection: no length, not chunked."""
    headers = response.headers
    return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()


def retry_after_seconds(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with an unknown origin zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
