"""Page -> Document: the readable text behind an item (a release page, an API's content, a PDF).

Pure, like the other extractors: the PDFs a detail page links to are returned as links for
run.py to fetch, never fetched from here.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from urllib.parse import urljoin, urlsplit

from monitor.errors import ExtractError
from monitor.extract.api import lookup
from monitor.extract.dom import drop_tree, parse_html, select, text_lines
from monitor.models import Document, Page, Source

log = logging.getLogger("monitor.extract")

# Where a regulator's page keeps the text of a release, tried in order when no detail_select is set.
MAIN_CONTENT = ("#pressrelease", "main", "article", "#content", ".content", "#main", "body")
CHROME = "header, footer, nav, form, aside, .breadcrumb, .share-tools, #skip, .skip-link"
PDF_LINK = re.compile(r"\.pdf(?:$|[?#])", re.I)
# A release's attachment whose URL names no ".pdf": the SFC's content API links its appendices as
# .../api/news/openAppendix?...&appendix=0 (as third-party readers of that API show; not checked
# live). A link whose words say it is a PDF or an attachment (附件) is one too, but is read only if
# it answers with a PDF: "Appendix 6 of the Code of Conduct" is a page of its own, not the release's.
ATTACHMENT_LINK = re.compile(r"/open(?:File|Appendix)\b", re.I)
ATTACHMENT_TEXT = re.compile(r"\bPDF\b|附件", re.I)
MAX_PDF_PAGES = 200  # a 2,000-page annex is not read to its end: the first pages carry the subject
MAX_PDF_CHARS = 200_000  # of text; more than the monitor classifies of one item (follow.MAX_BODY_CHARS)
# pypdf's text extraction slows faster than a page's instructions grow: 40,000 text operators (~1 MB)
# take ~1.6 s of CPU, 200,000 take ~50 s, and a 13 KB PDF can hold that many. A dense page of text
# is ~50 KB of instructions; a page over this is not read, and no PDF costs more CPU than PDF_SECONDS.
MAX_PAGE_INSTRUCTIONS = 1_000_000
PDF_SECONDS = 10.0
DRAWS = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do\b")  # an instruction drawing a form (or an image)
cpu_seconds = time.thread_time  # the reading thread's CPU (a PDF is read in a thread of its own)

# Government press releases (info.gov.hk) end with a footer that is not part of the release:
# "Ends/Thursday, January 22, 2026" / "Issued at HKT 15:00" / "NNNN", and in Chinese "完" /
# "2026年1月22日（星期四）" / "香港時間15時00分發出".
GOV_FOOTER = re.compile(
    r"^(?:Ends\s*/.*|Issued at HKT \d{1,2}:\d{2}|NNNN|完|"
    r"\d{4}年\d{1,2}月\d{1,2}日\s*[（(]星期.[）)]|香港時間\d{1,2}時\d{1,2}分發出)$"
)


def read_document(source: Source, page: Page) -> Document:
    """The text of a fetched detail page, content API answer or PDF."""
    if is_pdf(page):
        return _document(source, page, "pdf", _pdf_text(page.body, page.url))
    if source.detail_field:
        return _from_json(source, page)
    root = parse_html(page.text)
    text, links = _html_text(root, source.detail_select, page.final_url, source.detail_pdfs)
    return _document(source, page, "html", text, links)


def is_pdf(page: Page) -> bool:
    return page.body[:5] == b"%PDF-" or "pdf" in page.headers.get("content-type", "")


def strip_footer(lines: list[str]) -> list[str]:
    """Drop the Government's end-of-release lines (and anything after "Ends/")."""
    kept: list[str] = []
    for line in lines:
        if line.startswith("Ends/") or line == "完":
            break
        if not GOV_FOOTER.match(line):
            kept.append(line)
    return kept


def _from_json(source: Source, page: Page) -> Document:
    try:
        data = json.loads(page.text)
    except json.JSONDecodeError as exc:
        raise ExtractError(f"detail is not JSON ({exc.msg} at line {exc.lineno})") from None
    value = lookup(data, source.detail_field)
    if not isinstance(value, str):
        raise ExtractError(f'detail JSON has no text at "{source.detail_field}"')
    if "<" not in value:
        return _document(source, page, "json", value.strip())
    root = parse_html(f"<html><body>{value}</body></html>")
    text, links = _html_text(root, source.detail_select, page.final_url, source.detail_pdfs)
    return _document(source, page, "json", text, links)


def _html_text(root, css: str, base_url: str, max_pdfs: int) -> tuple[str, tuple[str, ...]]:
    for element in select(root, CHROME):
        drop_tree(element)
    candidates = (css,) if css else MAIN_CONTENT
    found = next((hits[0] for c in candidates if (hits := select(root, c))), None)
    if found is None:
        raise ExtractError(f'detail_select "{css}" matched nothing (layout changed?)')
    by_url: list[str] = []
    by_words: list[str] = []
    for anchor in found.iter("a"):
        href = (anchor.get("href") or "").strip()
        if named_attachment(href):
            by_url.append(urljoin(base_url, href))
        elif _said_attachment(href, anchor, base_url):
            by_words.append(urljoin(base_url, href))
    links = list(dict.fromkeys(by_url + by_words))  # the links that say what they are first
    return "\n".join(strip_footer(text_lines(found))), tuple(links[:max_pdfs])


def named_attachment(url: str) -> bool:
    """A link whose URL says it is a PDF or an appendix."""
    return bool(PDF_LINK.search(url) or ATTACHMENT_LINK.search(url))


def _said_attachment(href: str, anchor, base_url: str) -> bool:
    """A link on the release's own site whose words say it is a PDF or an attachment (not "Get
    Adobe PDF Reader" elsewhere, nor a part of this or another page)."""
    url = urlsplit(urljoin(base_url, href))
    return (
        url.scheme in ("http", "https")
        and url.netloc == urlsplit(base_url).netloc
        and bool(url.path.strip("/"))
        and not url.fragment
        and bool(ATTACHMENT_TEXT.search("".join(anchor.itertext())))
    )


class _OutOfTime(Exception):
    """The PDF's CPU budget ran out in the middle of a page."""


def _pdf_text(body: bytes, url: str = "") -> str:
    """The text of the PDF's first pages: up to MAX_PDF_PAGES, MAX_PDF_CHARS and PDF_SECONDS of
    CPU (looked at before every drawing instruction: one page can repeat a form a thousand times);
    a page with more than MAX_PAGE_INSTRUCTIONS, its forms included, is left out."""
    from pypdf import PdfReader  # imported here: only rounds that meet a PDF pay for it

    started, pages, chars, skipped = cpu_seconds(), [], 0, []

    def in_time(*_: object) -> None:
        if cpu_seconds() - started > PDF_SECONDS:
            raise _OutOfTime

    try:
        reader = PdfReader(io.BytesIO(body))
        for number, page in enumerate(reader.pages[:MAX_PDF_PAGES], 1):
            if chars >= MAX_PDF_CHARS:
                break
            if _instructions(page) > MAX_PAGE_INSTRUCTIONS:
                skipped.append(number)
                continue
            text = page.extract_text(visitor_operand_before=in_time) or ""
            pages.append(text)
            chars += len(text)
    except _OutOfTime:
        log.warning(
            "PDF %s: read to page %d only (%.0f s of CPU)", url, len(pages) + len(skipped), PDF_SECONDS
        )
    except Exception as exc:  # pypdf raises many types (even AssertionError) on odd files
        raise ExtractError(f"PDF cannot be read ({type(exc).__name__}: {exc})"[:300]) from None
    if skipped:
        log.warning(
            "PDF %s: pages %s not read: over %d bytes of drawing instructions",
            url,
            skipped[:10],
            MAX_PAGE_INSTRUCTIONS,
        )
    lines = (line.strip() for text in pages for line in text.splitlines())
    return "\n".join(line for line in lines if line)[:MAX_PDF_CHARS]


def _instructions(page) -> int:
    """Bytes of drawing instructions a page's text is read from: its content and each form it
    draws (`/Name Do`), once each, forms within forms too. pypdf parses a stream before its first
    instruction runs, so only a stream's size bounds that."""
    contents = page.get_contents()
    data = contents.get_data() if contents is not None else b""
    size, pending, seen = len(data), [(data, page.get("/Resources"))], set()
    while pending and size <= MAX_PAGE_INSTRUCTIONS:
        data, resources = pending.pop()
        forms = _forms(resources)
        for name in set(DRAWS.findall(data)):
            form = forms.get("/" + name.decode("latin-1"))
            if form is None or id(form) in seen:
                continue
            seen.add(id(form))
            drawn = form.get_data()
            size += len(drawn)
            pending.append((drawn, form.get("/Resources")))
    return size


def _forms(resources) -> dict:
    """The Form XObjects of a resource dictionary, by name."""
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not hasattr(xobjects, "items"):
        return {}
    found = {name: ref.get_object() for name, ref in xobjects.items()}
    return {
        name: obj
        for name, obj in found.items()
        if hasattr(obj, "get_data") and obj.get("/Subtype") == "/Form"
    }


def _document(source: Source, page: Page, kind: str, text: str, links: tuple[str, ...] = ()) -> Document:
    return Document(
        url=page.url,
        sha256=page.sha256,
        text=text,
        content_type=kind,
        fetched_at=page.fetched_at,
        source_id=source.id,
        links=links,
    )
