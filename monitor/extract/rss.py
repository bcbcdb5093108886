"""RSS/Atom feed -> items, with feedparser.

feedparser and BeautifulSoup are imported on first use: together they take ~0.15 s to import,
paid by every run, `validate` and `health` included, even on a config without a feed.
"""

from __future__ import annotations

import io
import xml.sax
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import feedparser

from monitor.charset import content_type_charset, decode
from monitor.errors import ExtractError, LayoutChanged
from monitor.extract.dom import XML_DECLARATION
from monitor.extract.keys import item_key, unique_items
from monitor.models import Item, Page, Snapshot, Source
from monitor.normalize import clean_text, clean_title, iso_from_struct, parse_date


def extract(source: Source, page: Page) -> Snapshot:
    import feedparser

    # Decoded as every page is (monitor.charset: Big5 labelled UTF-8, HKSCS characters, a stray
    # byte), then handed over as UTF-8 without its declaration: feedparser's own guess would read
    # such a feed as Windows-1252, and every title would "change".
    text = page.text or decode(page.body, content_type_charset(page.headers.get("content-type", "")))[0]
    body = XML_DECLARATION.sub("", text, count=1).encode("utf-8", errors="replace")
    headers = {"content-type": "application/xml; charset=utf-8"}
    # A file object, never the bytes: given bytes, feedparser first tries them as a local file
    # name, so a server answering "/etc/passwd" would have the monitor read that file.
    try:
        parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    except Exception as exc:  # feedparser has no error contract: a NUL in the encoding name raises ValueError
        raise ExtractError(f"malformed feed: {type(exc).__name__}: {exc}") from None
    problem = parsed.get("bozo_exception")
    # feedparser falls back to a lenient parser on broken XML and returns what it could read; a
    # truncated feed read that way looks like items were removed, so broken XML is an error.
    if parsed.get("bozo") and isinstance(problem, xml.sax.SAXException):
        raise ExtractError(f"malformed feed: {problem}")
    if not parsed.get("version") and not parsed.entries:
        raise ExtractError("not an RSS or Atom feed")
    items = [_item(entry, source.ignore_params) for entry in parsed.entries]
    items = [i for i in items if i.title or i.link]
    if not items:
        raise LayoutChanged("the feed has no items (layout changed?)")
    return Snapshot(kind="items", items=unique_items(items), title=parsed.feed.get("title", ""))


def _item(entry: feedparser.FeedParserDict, ignore_params: tuple[str, ...]) -> Item:
    title = clean_title(entry.get("title", ""))
    link = clean_text(entry.get("link", ""))
    guid = entry.get("id", "") if entry.get("guidislink") is not True else ""
    date = _date(entry)
    summary = entry.get("summary", "")
    return Item(item_key(guid, link, title, ignore_params), title, link, date, _fragment_text(summary))


def _date(entry: feedparser.FeedParserDict) -> str:
    """The item's date in Hong Kong time. One feedparser cannot read (written without a zone,
    "Sun, 06 Dec 2026 20:30:00", against RSS's rules) is read for its day: dropped, the date
    vanished from the alert and the log, and the date-based guards were off."""
    for field in ("published", "updated"):  # asked only when there: feedparser warns otherwise
        if field in entry and entry.get(f"{field}_parsed"):
            return iso_from_struct(entry[f"{field}_parsed"])
    written = next((entry[f] for f in ("published", "updated") if entry.get(f)), "")
    return parse_date(written) if written else ""


def _fragment_text(html: str) -> str:
    """A description's HTML fragment as text. Fragments are small and often sloppy: BeautifulSoup's
    forgiving cleanup is worth its cost here (listings and pages, parsed every round, use lxml)."""
    if "<" not in html:
        return clean_title(html)
    from bs4 import BeautifulSoup

    return clean_title(BeautifulSoup(html, "lxml").get_text(" "))
