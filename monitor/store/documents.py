"""The documents behind items (detail pages, content APIs, PDFs): a cache by URL, and the last
bytes seen of each PDF so that a silent re-upload under the same URL is noticed."""

from __future__ import annotations

import json
from collections.abc import Iterable

from monitor.models import Document, Page
from monitor.store.blobs import Blobs


class DocumentStore:
    db: object  # sqlite_utils.Database, set by Store
    blobs: Blobs

    def documents(self, urls: Iterable[str]) -> dict[str, Document]:
        """The cached documents among `urls`."""
        wanted = list(dict.fromkeys(urls))
        found: dict[str, Document] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT * FROM documents WHERE url IN ({marks})", chunk):
                found[row["url"]] = self._document(row)
        return found

    def documents_due(self, source_id: str, checked_before: str, limit: int) -> list[Document]:
        """PDFs of a source not re-downloaded since `checked_before`, the longest-unchecked first."""
        rows = self.db.query(
            """SELECT * FROM documents WHERE source_id = ? AND content_type = 'pdf' AND checked_at < ?
               ORDER BY checked_at LIMIT ?""",
            [source_id, checked_before, limit],
        )
        return [self._document(row) for row in rows]

    def put_documents(self, documents: Iterable[Document], pages: Iterable[Page], now: str) -> None:
        """Cache documents (call inside the round's transaction). PDFs keep their raw bytes as
        evidence, so `show --raw/--before` can give the exact file of each version."""
        self.db.conn.executemany(
            """INSERT INTO documents (url, source_id, title, content_type, sha256, text, links,
                                      fetched_at, checked_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (url) DO UPDATE SET sha256 = excluded.sha256, text = excluded.text,
                 links = excluded.links, fetched_at = excluded.fetched_at, checked_at = excluded.checked_at,
                 title = CASE WHEN excluded.title != '' THEN excluded.title ELSE title END""",
            [
                (
                    d.url,
                    d.source_id,
                    d.title,
                    d.content_type,
                    d.sha256,
                    self.blobs.pack(d.text.encode("utf-8")),
                    json.dumps(list(d.links)),
                    d.fetched_at,
                    now,
                )
                for d in documents
            ],
        )
        self.db.conn.executemany(
            """INSERT OR IGNORE INTO bodies (sha256, size, content_type, content, created_at)
               VALUES (?, ?, ?, ?, ?)""",
            [
                (p.sha256, len(p.body), p.headers.get("content-type", ""), self.blobs.pack(p.body), now)
                for p in pages
                if p.body.startswith(b"%PDF-")
            ],
        )

    def mark_checked(self, urls: Iterable[str], now: str) -> None:
        self.db.conn.executemany(
            "UPDATE documents SET checked_at = ? WHERE url = ?", [(now, u) for u in urls]
        )

    def _document(self, row: dict) -> Document:
        return Document(
            url=row["url"],
            sha256=row["sha256"],
            text=self.blobs.unpack(row["text"]).decode("utf-8"),
            content_type=row["content_type"],
            fetched_at=row["fetched_at"],
            source_id=row["source_id"],
            title=row["title"],
            links=tuple(json.loads(row["links"])),
        )
