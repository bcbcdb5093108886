"""An HTML listing -> items: one per element matched by the source's `items` selector."""

from __future__ import annotations

import logging

from monitor import __version__
from monitor.errors import LayoutChanged
from monitor.extract.dom import element_text, parse_page, region_digest, select
from monitor.extract.keys import item_key, unique_items
from monitor.models import Item, Page, Snapshot, Source
from monitor.normalize import clean_text, clean_title, join_link, parse_date

log = logging.getLogger("monitor.extract")


def extract(source: Source, page: Page, known_region: str = "") -> Snapshot | None:
    """None when the listing's items are byte-for-byte those of `known_region` (see Snapshot.region)."""
    root = parse_page(page)
    elements = select(root, source.items)
    if not elements:
        raise LayoutChanged(f"items selector {source.items!r} matched nothing (layout changed?)")
    title = root.findtext(".//title") or ""
    region = region_digest(elements, __version__, repr(source), page.final_url, title)
    if region == known_region:
        return None
    items = [_item(source, element, page.final_url) for element in elements]
    items = [i for i in items if i.title]
    if source.date and len(items) > 1 and not any(i.date for i in items):  # its items still count
        log.warning(
            "%s: date selector %r matched nothing inside the items (layout changed?): items without dates",
            source.id,
            source.date,
        )
    if not items:
        raise LayoutChanged(
            f"title selector {source.title!r} matched nothing inside the items (layout changed?)"
        )
    return Snapshot(kind="items", items=unique_items(items), title=clean_title(title), region=region)


def _item(source: Source, element, base_url: str) -> Item:
    titles = select(element, source.title)
    links = titles if source.link == source.title else select(element, source.link)  # often one
    title = clean_title(element_text(titles[0])) if titles else ""
    link = _first_link(links, base_url)
    date = parse_date(_first_text(element, source.date)) if source.date else ""
    return Item(item_key("", link, title, source.ignore_params), title, link, date)


def _first_text(element, css: str) -> str:
    found = select(element, css)
    return element_text(found[0]) if found else ""


def _first_link(found: list, base_url: str) -> str:
    for element in found:
        href = element.get("href") or next((a.get("href") for a in element.iter("a") if a.get("href")), None)
        if href:
            return join_link(base_url, clean_text(href))
    return ""
