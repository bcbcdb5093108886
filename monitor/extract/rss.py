"""RSS/Atom feed -> items, with feedparser.

feedparser and BeautifulSoup are imported on first use: together they take ~0.15 s to import,
paid by every run, `validate` and `health` included, even on a config without a feed.
"""

from __future__ import annotations

import io
import re
import xml.sax
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import feedparser

from monitor.charset import content_type_charset, decode
from monitor.errors import ExtractError, LayoutChanged
from monitor.extract.dom import XML_DECLARATION
from monitor.extract.keys import item_key, unique_items
from monitor.models import Item, Page, Snapshot, Source
from monitor.normalize import HKT, clean_text, clean_title, iso_from_struct, parse_date

# How a feed date names its zone, at its end: "+0800", "+08:00", "...Z", "GMT", "UT", "HKT".
WITH_ZONE = re.compile(r"(?:[+-]\d\d:?\d\d|\dZ|\b(?:UTC|UT|[A-Z]{1,3}T))\s*$")


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
    """The item's date in Hong Kong time. One written without a zone ("Sun, 06 Dec 2026 20:30:00",
    against RSS's rules) is the regulator's own time: feedparser reads it as UTC, or not at all."""
    # One field or the other: asking feedparser for "updated" when "published" is there warns.
    field = "published" if "published" in entry else "updated"
    parsed, written = entry.get(f"{field}_parsed"), (entry.get(field) or "").strip()
    if not written or WITH_ZONE.search(written):
        return iso_from_struct(parsed)
    if parsed is None:
        return parse_date(written)
    moment = datetime(*parsed[:6], tzinfo=HKT)
    return (
        moment.date().isoformat()
        if (moment.hour, moment.minute, moment.second) == (0, 0, 0)
        else moment.isoformat()
    )


def _fragment_text(html: str) -> str:
    """A description's HTML fragment as text. Fragments are small and often sloppy: BeautifulSoup's
    forgiving cleanup is worth its cost here (listings and pages, parsed every round, use lxml)."""
    if "<" not in html:
        return clean_title(html)
    from bs4 import BeautifulSoup

    return clean_title(BeautifulSoup(html, "lxml").get_text(" "))
