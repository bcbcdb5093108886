"""Following new items to their text: the detail part of one source's round.

A feed's title alone misses releases (the SFC's and HKMA's feeds carry no description), so each
new item is followed to its detail page or content API and the PDFs that links to, and is
classified on all of that text. Known PDFs are downloaded again now and then: the same URL
serving different text is a silent re-upload, reported as a "changed" change with a text diff.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from monitor.answers import refuse_other_page
from monitor.errors import SourceError
from monitor.extract.document import is_pdf, named_attachment, read_document
from monitor.fetch import Fetcher
from monitor.models import NOT_FETCHED, PARTLY_READ, Change, Document, Followed, Page, Source
from monitor.normalize import CJK

log = logging.getLogger("monitor.follow")

Cache = Callable[[Iterable[str]], Mapping[str, Document]]
MAX_BODY_CHARS = 200_000  # what is classified of one item: a long PDF's first ~60 pages
MIN_TEXT = 40  # characters: less than this from a detail page is a script shell, not a release


@dataclass
class Follower:
    """One source's detail fetches in one round: the cache, and the fetches left (the budget)."""

    fetcher: Fetcher
    source: Source
    cache: Cache
    left: int
    known: dict[str, Document] = field(default_factory=dict)
    fetched: list[Document] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    async def document(self, url: str, item_title: str) -> Document:
        """The document at `url`: from the cache when known (re-uploads are the recheck's job),
        else fetched, within the budget. A page with no readable text yet is not cached: a release
        whose content is filled in after it is listed is read again on a later round."""
        if url not in self.known:
            self.known.update(self.cache([url]))
        if url in self.known:
            return self.known[url]
        if self.left <= 0:
            raise SourceError("more new items than [settings] detail_limit this round")
        self.left -= 1
        page = await self.fetcher.fetch_document(self.source, url)
        pdf = is_pdf(page)
        if not pdf and not self.source.detail_field:
            refuse_other_page(page.text, item_title)
        document = await _read(self.source, page)
        self.known[url] = document
        if pdf or readable(document.text):
            self.fetched.append(document)
        self.pages.append(page)
        return document


def detail_url(source: Source, change: Change) -> str:
    """The item's detail URL: its link, or the source's template filled with its id and link."""
    if source.detail == "link":
        return change.link
    # "id:26PR134|<title>": a reference number a listing gave two releases, each with its title
    ref = change.item_key.removeprefix("id:").split("|")[0] if change.item_key.startswith("id:") else ""
    if "{id}" in source.detail and not ref:
        return ""
    return source.detail.replace("{id}", ref).replace("{link}", change.link).replace("{key}", change.item_key)


async def follow(
    fetcher: Fetcher, cache: Cache, source: Source, changes: Sequence[Change], limit: int
) -> tuple[tuple[Change, ...], Followed]:
    """Each new item with the text of its detail page and PDFs, and what was fetched for it."""
    wanted = [c for c in changes if c.kind == "new"]
    if not source.detail or not wanted or limit <= 0:
        return tuple(changes), Followed()
    follower = Follower(fetcher, source, cache, limit)
    follower.known.update(cache(u for c in wanted if (u := detail_url(source, c))))
    bodies = await asyncio.gather(*(_body(follower, detail_url(source, c), c.title) for c in wanted))
    by_change = {id(c): body for c, body in zip(wanted, bodies, strict=True)}
    result = tuple(_with_body(c, *by_change[id(c)]) if id(c) in by_change else c for c in changes)
    fetched = tuple(replace(d, title=_title_for(d.url, result)) for d in follower.fetched)
    return result, Followed(fetched, tuple(follower.pages))


async def _body(follower: Follower, url: str, title: str) -> tuple[str, tuple[str, ...], str]:
    """(text, the URLs it came from, status) for one item."""
    source = follower.source
    if not url:
        return "", (), NOT_FETCHED + "the item has no link or id for its detail URL"
    try:
        page_doc = await follower.document(url, title)
    except Exception as exc:  # whatever goes wrong with one item's text, the item still counts
        log.info("%s: detail %s not fetched: %s", source.id, url, exc)
        return "", (), NOT_FETCHED + _reason(exc)
    texts, urls, unread = [page_doc.text], [url], ""
    for pdf_url in page_doc.links[: source.detail_pdfs]:
        try:
            pdf = await follower.document(pdf_url, title)
        except Exception as exc:  # the release's own text alerts now; the PDF is read again later
            log.info("%s: linked PDF %s not read: %s", source.id, pdf_url, _reason(exc))
            unread = unread or f"{pdf_url}: {_reason(exc)}"
            continue
        if pdf.content_type != "pdf" and not named_attachment(pdf_url):
            continue  # a link saying "PDF" that answered with a web page: not the release's text
        texts.append(pdf.text)
        urls.append(pdf_url)
    text = "\n".join(texts)[:MAX_BODY_CHARS]
    if not readable(text):
        return text, tuple(urls), NOT_FETCHED + "the detail page has no readable text (yet?)"
    return text, tuple(urls), PARTLY_READ + f"a linked PDF was not read ({unread})" if unread else "fetched"


def readable(text: str) -> bool:
    """Enough text to be a release, not a script shell or a placeholder ("Document not available.").
    A Chinese character says about as much as three Latin ones."""
    return len(text.strip()) + 2 * len(CJK.findall(text)) >= MIN_TEXT


async def _read(source: Source, page: Page) -> Document:
    if is_pdf(page):  # pypdf is slow on big files: keep the other fetches moving
        return await asyncio.to_thread(read_document, source, page)
    return read_document(source, page)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, SourceError) else f"internal error: {type(exc).__name__}: {exc}"[:300]


def _with_body(change: Change, text: str, urls: tuple[str, ...], status: str) -> Change:
    return replace(change, body=text, documents=urls, body_status=status)


def _title_for(url: str, changes: Sequence[Change]) -> str:
    return next((c.title for c in changes if url in c.documents), "")


async def recheck(
    fetcher: Fetcher, source: Source, due: Sequence[Document]
) -> tuple[list[tuple[Change, Page, str]], Followed]:
    """Download known PDFs again: (re-upload changes with the new bytes and the old sha256, what to
    store). Same bytes, or new bytes with the same text (a re-saved file), are not changes."""
    changes: list[tuple[Change, Page, str]] = []
    documents: list[Document] = []
    pages: list[Page] = []
    checked: list[str] = []
    for old in due:
        try:
            page = await fetcher.fetch_document(source, old.url)
            if page.sha256 == old.sha256:
                checked.append(old.url)
                continue
            if not is_pdf(page):  # a redirect to the site's home page, a login form: not a re-upload
                raise SourceError(f"no PDF at the URL now ({page.headers.get('content-type') or 'no type'})")
            new = replace(await _read(source, page), title=old.title)
            if not readable(new.text) and readable(old.text):  # a scanned copy: nothing to compare
                raise SourceError("the new copy has no text to compare (a scan?)")
        except Exception as exc:  # tried again at the next recheck; meanwhile the others get a turn
            log.info("%s: recheck of %s failed: %s", source.id, old.url, _reason(exc))
            checked.append(old.url)
            continue
        documents.append(new)
        pages.append(page)
        if new.text != old.text:
            changes.append((reuploaded(source, old, new), page, old.sha256))
    return changes, Followed(tuple(documents), tuple(pages), tuple(checked))


def reuploaded(source: Source, old: Document, new: Document) -> Change:
    """A document whose URL now serves different text: a "changed" change with a line diff."""
    before, after = old.text.splitlines(), new.text.splitlines()
    diff_lines = list(difflib.unified_diff(before, after, "before", "after", lineterm="", n=1))
    added = tuple(line[1:] for line in diff_lines[2:] if line.startswith("+"))  # [2:]: past the file names
    removed = tuple(line[1:] for line in diff_lines[2:] if line.startswith("-"))
    return Change(
        source_id=source.id,
        kind="changed",
        title=old.title or new.url,
        item_key=f"doc:{new.url}",
        link=new.url,
        before="the document was re-uploaded under the same URL with different text",
        added=added,
        removed=removed,
        diff="\n".join(diff_lines),
        body=new.text,  # a guideline is on topic by its text, even when the changed lines are a fee
        documents=(new.url,),
        body_status="fetched",
    )
