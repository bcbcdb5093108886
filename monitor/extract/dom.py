"""lxml helpers shared by the html and page extractors.

Listings and pages are parsed with lxml directly and selected with cssselect: on a ~100 KB
regulator page that is ~2 ms against ~33 ms for a BeautifulSoup tree (see bench/), and pages
are parsed every round when their noise defeats the raw-body hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from functools import lru_cache

from lxml import etree
from lxml.cssselect import CSSSelector

from monitor.errors import ExtractError
from monitor.models import Page
from monitor.normalize import clean_text

XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
# Markup from its first byte on but for ASCII white space, and no XML declaration: what
# parse_html would hand lxml unchanged (it strips a declaration after any Unicode white space).
PLAIN_MARKUP_BYTES = re.compile(rb"[ \t\n\r\f\v]*<(?!\?xml)")
DROPPED = {"script", "style", "noscript", "template", "svg", "iframe", "head"}
BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul", "caption",
}  # fmt: skip
CELLS = {"td", "th"}


def parse_page(page: Page) -> etree._Element:
    """parse_html(page.text); a page that came as UTF-8 (most do) is parsed from its own bytes,
    which are the text's UTF-8 encoding already (~75 us saved on a 100 KB listing)."""
    if page.encoding == "utf-8" and PLAIN_MARKUP_BYTES.match(page.body):
        return _parse(page.body)
    return parse_html(page.text)


def parse_html(text: str) -> etree._Element:
    if not text.strip():
        raise ExtractError("empty page")
    # The text is already decoded (monitor.charset): handed to lxml as UTF-8 bytes with the encoding
    # named, it parses ~3x faster than as a str, and a <meta charset> in the page cannot mislead it.
    return _parse(XML_DECLARATION.sub("", text, count=1).encode("utf-8", errors="replace"))


def _parse(markup: bytes) -> etree._Element:
    try:
        root = etree.HTML(markup, _parser())
    except (etree.ParserError, ValueError) as exc:
        raise ExtractError(f"not an HTML page ({exc})") from None
    if root is None:
        raise ExtractError("not an HTML page (Document is empty)")
    return root


@lru_cache(maxsize=1)
def _parser() -> etree.HTMLParser:
    """lxml's plain HTML parser, made once: lxml.html's would wrap every element the extractors
    touch in an HtmlElement, through a Python lookup each time, for methods they do not use."""
    return etree.HTMLParser(encoding="utf-8")


def drop_tree(element: etree._Element) -> None:
    """Remove `element` and what it holds, keeping the text that follows it (lxml.html's drop_tree)."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


# A tag, classes, or a tag with classes ("a", ".date", "a.title"): what a listing's title, link and
# date selectors nearly always are. Walking the item for them is ~3x quicker than cssselect's XPath,
# and they are run for each of a listing's items.
SIMPLE_SELECTOR = re.compile(r"([a-z][a-z0-9]*)?((?:\.[A-Za-z_][A-Za-z0-9_-]*)*)\Z")
XPATH_SPACE = str.maketrans("\t\n\r", "   ")  # what normalize-space() collapses, with " "


@lru_cache(maxsize=512)
def selector(css: str) -> CSSSelector:
    """Compiled once per selector string; validated by config before it gets here."""
    return CSSSelector(css)


@lru_cache(maxsize=512)
def _simple(css: str) -> tuple[str | None, tuple[str, ...]] | None:
    """(tag or None, classes) when `css` is a simple selector, else None."""
    match = SIMPLE_SELECTOR.match(css)
    if not match or not (match[1] or match[2]):
        return None
    return match[1], tuple(match[2].split(".")[1:])


def select(root: etree._Element, css: str) -> list[etree._Element]:
    """What CSSSelector(css) finds under `root` (itself included), in document order."""
    simple = _simple(css)
    if simple is None:
        return selector(css)(root)
    tag, classes = simple
    found = root.iter(tag) if tag else root.iter(etree.Element)
    if not classes:
        return list(found)
    return [element for element in found if _has_classes(element.get("class"), classes)]


def _has_classes(value: str | None, classes: tuple[str, ...]) -> bool:
    """cssselect's test, contains(concat(' ', normalize-space(@class), ' '), ' name '), for each."""
    if value is None:
        return False
    if value == classes[0] and len(classes) == 1:  # class="date": the usual case
        return True
    names = (value if value.isprintable() else value.translate(XPATH_SPACE)).split(" ")
    return all(name in names for name in classes)


def region_digest(elements: Iterable[etree._Element], *context: str) -> str:
    """sha256 of the selected elements' markup and of what else decides the extraction (`context`:
    the selectors, the base URL, the page title). Equal digests mean an equal extraction, so the
    noise outside the region (a timestamp, a CSRF token) costs a parse, never a full extraction."""
    digest = hashlib.sha256("\0".join(context).encode("utf-8"))
    for element in elements:
        digest.update(etree.tostring(element, encoding="utf-8", with_tail=False))
    return digest.hexdigest()


def element_text(element: etree._Element) -> str:
    if not len(element):  # a leaf (a listing's title link, its date): what text_lines gives, quicker
        return "" if element.tag in DROPPED else clean_text(element.text or "").strip(" |").strip()
    return clean_text(" ".join(text_lines(element)))


def text_lines(element: etree._Element) -> list[str]:
    """Visible text as lines: one per block element, table cells joined by ' | '."""
    parts: list[str] = []
    walker = etree.iterwalk(element, events=("start", "end", "comment", "pi"))
    for event, node in walker:
        tag = node.tag if isinstance(node.tag, str) else None
        if event in ("comment", "pi"):  # no end event: keep the text that follows them
            parts.append(_inline(node.tail or ""))
            continue
        if event == "start":
            if tag in DROPPED:
                walker.skip_subtree()
                continue
            if tag in BLOCKS:
                parts.append("\n")
            if node.text:
                parts.append(_inline(node.text))
            continue
        if tag in CELLS:
            parts.append(" | ")
        elif tag in BLOCKS:
            parts.append("\n")
        if node.tail and node is not element:
            parts.append(_inline(node.tail))
    lines = (clean_text(line).strip(" |") for line in "".join(parts).split("\n"))
    return [line.strip() for line in lines if line.strip()]


def _inline(text: str) -> str:
    """Line breaks in the HTML source are formatting, not content: only block elements end a line."""
    return " ".join(text.split("\n"))
