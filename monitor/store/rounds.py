"""One source's round, every write of it in one transaction: the fetch record, and for a new
version its snapshot, raw body, items, changes and their outbox rows."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.models import Change, Followed, Page, Snapshot, Source
from monitor.store.blobs import Blobs
from monitor.store.clock import utc_now
from monitor.store.codec import encode_snapshot
from monitor.store.events import link_key, title_key
from monitor.store.outbox import Recipients
from monitor.store.transaction import immediate, writes


class RoundStore:
    db: object  # sqlite_utils.Database, set by Store
    blobs: Blobs

    @writes
    def record_unchanged(
        self, source: Source, page: Page, status: str, region: str = "", extracted: bool = False
    ) -> None:
        """The body (or its extracted content) is what we already have: log the fetch only, and the
        digests of the region and of the body it was extracted from (with where its noise was), so
        that the next round can skip the extraction (the region) or even the parse (the body)."""
        with immediate(self.db):
            self._fetch_row(source.id, page, status)
            self._succeeded(source.id, page.fetched_at)
            if region:
                self.db.execute(
                    "UPDATE source_state SET region_sha256 = ? WHERE source_id = ? AND region_sha256 != ?",
                    [region, source.id, region],
                )
            if not page.not_modified:  # a 304 has no body
                self.db.execute(
                    """UPDATE source_state SET stable_sha256 = ?, noise = ?
                       WHERE source_id = ? AND (stable_sha256 != ? OR noise != ?)""",
                    [page.stable_sha256, page.noise, source.id, page.stable_sha256, page.noise],
                )
            if extracted:  # the same items as stored: one missing last round is back
                self.db.execute(  # and the validators left out meanwhile are kept again
                    """UPDATE source_state SET pending_removal = '[]', etag = ?, last_modified = ?
                       WHERE source_id = ? AND pending_removal != '[]'""",
                    [page.validators.etag, page.validators.last_modified, source.id],
                )

    @writes
    def record_failure(
        self, source: Source, error: str, page: Page | None = None, attempted_at: str = ""
    ) -> None:
        """`attempted_at`: when the attempt began (its retries come after): the next is due from it."""
        now = utc_now()
        with immediate(self.db):
            self._fetch_row(source.id, page, "error", error=error, fetched_at=now)
            self.db.execute(
                """INSERT INTO health (source_id, consecutive_failures, last_attempt_at, last_error, last_error_at)
                   VALUES (?, 1, ?, ?, ?)
                   ON CONFLICT (source_id) DO UPDATE SET
                     consecutive_failures = consecutive_failures + 1,
                     last_attempt_at = excluded.last_attempt_at,
                     last_error = excluded.last_error, last_error_at = excluded.last_error_at""",
                [source.id, attempted_at or now, error, now],
            )

    @writes
    def record_snapshot(
        self,
        source: Source,
        page: Page,
        previous: Snapshot | None,
        snapshot: Snapshot,
        changes: Sequence[Change],
        recipients: Recipients,
        previous_raw: str = "",
        followed: Followed = Followed(),  # noqa: B008 (frozen)
        duplicate_window: float = 3 * 86400,
        pending_removal: frozenset[str] = frozenset(),
    ) -> int:
        """Store a new snapshot with its changes and their outbox rows, atomically; returns how many
        of the changes repeat a release alerted through another source (see _queue_alerts).

        The outbox rows are written in the same transaction as the snapshot: if the process dies
        before sending, the next run still finds the alerts pending (it never loses them by having
        already moved on to the new snapshot).
        """
        now = utc_now()
        with immediate(self.db):
            status = "baseline" if previous is None else "changed" if changes else "updated"
            fetch_id = self._fetch_row(source.id, page, status, snapshot.hash)
            self._put_snapshot(snapshot, now)
            self._put_body(page, now)
            if snapshot.kind == "items":
                self._put_items(source.id, snapshot, page.fetched_at)
            self.put_documents(followed.documents, followed.pages, now)
            self.mark_checked(followed.checked, now)
            change_ids = [
                self._put_change(source, page, fetch_id, previous, snapshot, change, now, previous_raw)
                for change in changes
            ]
            repeats = self._queue_alerts(source.id, change_ids, changes, recipients, now, duplicate_window)
            self.db.execute(  # plain SQL: sqlite-utils' upsert reads the table's schema on every call
                """INSERT INTO source_state (source_id, snapshot_hash, raw_sha256, etag, last_modified,
                     updated_at, region_sha256, stable_sha256, noise, pending_removal)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (source_id) DO UPDATE SET snapshot_hash = excluded.snapshot_hash,
                     raw_sha256 = excluded.raw_sha256, etag = excluded.etag,
                     last_modified = excluded.last_modified, updated_at = excluded.updated_at,
                     region_sha256 = excluded.region_sha256, stable_sha256 = excluded.stable_sha256,
                     noise = excluded.noise, pending_removal = excluded.pending_removal""",
                [
                    source.id,
                    snapshot.hash,
                    # With an item missing once, the body that still listed it stays the one a
                    # removal confirmed next round shows as "before" (and prune keeps).
                    previous_raw if pending_removal and previous_raw else page.sha256,
                    # With an item missing once, the next round must read the page again: no
                    # validators (a 304) and no digests (the short cuts) that would skip it.
                    "" if pending_removal else page.validators.etag,
                    "" if pending_removal else page.validators.last_modified,
                    now,
                    "" if pending_removal else snapshot.region,
                    "" if pending_removal else page.stable_sha256,
                    "" if pending_removal else page.noise,
                    json.dumps(sorted(pending_removal)),
                ],
            )
            self._succeeded(source.id, page.fetched_at)
        return repeats

    @writes
    def record_documents(
        self,
        source: Source,
        followed: Followed,
        changes: Sequence[tuple[Change, Page, str]],
        recipients: Recipients,
    ) -> int:
        """Known PDFs downloaded again: a re-upload is a change (page = the new bytes, with the sha256
        of the old ones); the rest are only marked checked. One transaction. Returns the repeats
        (see _queue_alerts)."""
        now = utc_now()
        with immediate(self.db):
            self.put_documents(followed.documents, followed.pages, now)
            self.mark_checked(followed.checked, now)
            change_ids = []
            for change, page, old_sha in changes:
                fetch_id = self._fetch_row(source.id, page, "document")
                change_ids.append(
                    self._put_change(source, page, fetch_id, None, Snapshot("text"), change, now, old_sha)
                )
            return self._queue_alerts(source.id, change_ids, [c for c, _, _ in changes], recipients, now)

    def _fetch_row(
        self,
        source_id: str,
        page: Page | None,
        status: str,
        snapshot_hash: str = "",
        error: str = "",
        fetched_at: str = "",
    ) -> int:
        row = {
            "source_id": source_id,
            "fetched_at": page.fetched_at if page else fetched_at,
            "status": status,
            "http_status": page.status if page else None,
            "bytes": len(page.body) if page else 0,
            "duration_ms": page.duration_ms if page else 0,
            "final_url": page.final_url if page else "",
            "raw_sha256": page.sha256 if page and page.body else "",
            "snapshot_hash": snapshot_hash,
            "error": error,
            "headers": json.dumps(dict(page.headers) if page else {}),
        }
        return self._insert("fetches", row)

    def _succeeded(self, source_id: str, when: str) -> None:
        self.db.execute(
            """INSERT INTO health (source_id, consecutive_failures, last_attempt_at, last_success_at)
               VALUES (?, 0, ?, ?)
               ON CONFLICT (source_id) DO UPDATE SET consecutive_failures = 0,
                 last_attempt_at = excluded.last_attempt_at, last_success_at = excluded.last_success_at""",
            [source_id, when, when],
        )

    def _put_snapshot(self, snapshot: Snapshot, now: str) -> None:
        blob = self.blobs.pack(encode_snapshot(snapshot))
        self.db.execute(
            "INSERT OR IGNORE INTO snapshots (hash, kind, title, size, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            [snapshot.hash, snapshot.kind, snapshot.title, len(blob), blob, now],
        )

    def _put_body(self, page: Page, now: str) -> None:
        """The raw bytes as evidence of what the regulator published; stored once per distinct body."""
        self.db.execute(
            "INSERT OR IGNORE INTO bodies (sha256, size, content_type, content, created_at) VALUES (?, ?, ?, ?, ?)",
            [
                page.sha256,
                len(page.body),
                page.headers.get("content-type", ""),
                self.blobs.pack(page.body),
                now,
            ],
        )

    def _put_items(self, source_id: str, snapshot: Snapshot, seen_at: str) -> None:
        self.db.execute("UPDATE items SET present = 0 WHERE source_id = ?", [source_id])
        self.db.conn.executemany(
            """INSERT INTO items (source_id, key, title, link, date, first_seen_at, last_seen_at, present)
               VALUES (?, ?, ?, ?, ?, ?, ?, 1)
               ON CONFLICT (source_id, key) DO UPDATE SET title = excluded.title, link = excluded.link,
                 date = excluded.date, last_seen_at = excluded.last_seen_at, present = 1""",
            [(source_id, i.key, i.title, i.link, i.date, seen_at, seen_at) for i in snapshot.items],
        )

    def _put_change(
        self,
        source: Source,
        page: Page,
        fetch_id: int,
        previous: Snapshot | None,
        snapshot: Snapshot,
        change: Change,
        now: str,
        previous_raw: str,
    ) -> int:
        row = {
            "source_id": source.id,
            "regulator": source.regulator,
            "kind": change.kind,
            "item_key": change.item_key,
            "title": change.title,
            "link": change.link,
            "date": change.date,
            "text": change.text,
            "before": change.before,
            "added": json.dumps(list(change.added), ensure_ascii=False),
            "removed": json.dumps(list(change.removed), ensure_ascii=False),
            "diff": change.diff,
            "fetch_id": fetch_id,
            "old_snapshot": previous.hash if previous else "",
            "new_snapshot": snapshot.hash,
            "raw_sha256": page.sha256,
            "old_raw_sha256": previous_raw,
            "final_url": page.final_url,
            "fetched_at": page.fetched_at,
            "detected_at": now,
            "title_key": title_key(change.title) if change.kind != "page" else "",
            "link_key": link_key(change.link) if change.kind != "page" else "",
            **read_columns(change),
        }
        return self._insert("changes", row)

    def _insert(self, table: str, row: dict) -> int:
        """The new row's id. Plain SQL on the hot path (a fetch row per source per round, a change
        row per change): sqlite-utils' insert reads the table's schema on every call (~0.2-1 ms)."""
        columns = ", ".join(row)
        cursor = self.db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
        return int(cursor.lastrowid or 0)


def read_columns(change: Change) -> dict[str, str]:
    """The columns of a change that come of reading and classifying it: its topics, the terms
    matched, the documents its text came from and whether that text was read."""
    return {
        "topics": json.dumps(list(change.topics)),
        "matches": json.dumps({k: list(v) for k, v in change.matches.items()}, ensure_ascii=False),
        "documents": json.dumps(list(change.documents)),
        "body_status": change.body_status,
    }
