"""Page -> Snapshot. Pure: no I/O. One module per source kind."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace

from monitor.errors import ExtractError
from monitor.extract import api, html, page, rss
from monitor.models import Item, Page, Snapshot, Source

EXTRACTORS = {"rss": rss.extract, "json": api.extract}
REGION_EXTRACTORS = {"html": html.extract, "page": page.extract}  # markup: a region to digest


def extract(source: Source, fetched: Page) -> Snapshot:
    snapshot = extract_unless_same(source, fetched, "")
    assert snapshot is not None, "only a known region is skipped"
    return snapshot


def extract_unless_same(source: Source, fetched: Page, known_region: str) -> Snapshot | None:
    """Page -> Snapshot, or None when the region the source reads (a listing's items, a page's
    region) is byte-for-byte the one `known_region` digested: the stored snapshot stands, and
    only a parse was spent on a page whose noise (a timestamp, a CSRF token) defeats the raw-body
    hash. Feeds and APIs have no region: always extracted."""
    if not fetched.body.strip():  # a server answering 200 with nothing: never "everything removed"
        raise ExtractError(f"empty response (HTTP {fetched.status} with no content)")
    if source.kind in REGION_EXTRACTORS:
        found = REGION_EXTRACTORS[source.kind](source, fetched, known_region)
        if found is None:
            return None
        snapshot = found
    else:
        snapshot = EXTRACTORS[source.kind](source, fetched)
    if source.include_titles or source.exclude_titles:
        snapshot = replace(snapshot, items=tuple(i for i in snapshot.items if wanted(source, i.title)))
    return replace(snapshot, hash=snapshot_hash(snapshot))


def wanted(source: Source, title: str) -> bool:
    """The source's title filters: a firehose (every bureau's press releases) kept to what matters."""
    if source.include_titles and not any(re.search(p, title, re.I) for p in source.include_titles):
        return False
    return not any(re.search(p, title, re.I) for p in source.exclude_titles)


def snapshot_hash(snapshot: Snapshot) -> str:
    """Content hash of what was extracted. Order-free for items: reordering is not a change."""
    if snapshot.kind == "text":
        canonical = json.dumps([snapshot.title, snapshot.text], ensure_ascii=False)
    else:
        canonical = json.dumps(sorted(_item_tuple(i) for i in snapshot.items), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _item_tuple(item: Item) -> tuple[str, ...]:
    return (item.key, item.title, item.link, item.date, item.text)
