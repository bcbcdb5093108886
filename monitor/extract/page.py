"""A single page (a register, a policy page) -> its normalised text, without noise."""

from __future__ import annotations

import re

from monitor import __version__
from monitor.errors import LayoutChanged
from monitor.extract.dom import drop_tree, parse_page, region_digest, select, text_lines
from monitor.models import Page, Snapshot, Source
from monitor.normalize import clean_title


def extract(source: Source, page: Page, known_region: str = "") -> Snapshot | None:
    """None when the page's region is byte-for-byte the one of `known_region` (see Snapshot.region)."""
    root = parse_page(page)
    regions = select(root, source.select)
    if not regions:
        raise LayoutChanged(f"region {source.select!r} not found (layout changed?)")
    title = root.findtext(".//title") or ""
    region = region_digest(regions, __version__, repr(source), title)
    if region == known_region:
        return None
    for css in source.exclude:
        for element in select(root, css):
            drop_tree(element)
    ignore = [re.compile(pattern) for pattern in source.ignore]
    lines = [
        line
        for region in regions
        for line in text_lines(region)
        if not any(pattern.search(line) for pattern in ignore)
    ]
    if not lines:
        raise LayoutChanged(f"region {source.select!r} has no text (layout changed?)")
    return Snapshot(kind="text", text="\n".join(lines), title=clean_title(title), region=region)
