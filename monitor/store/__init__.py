"""The only module that touches SQLite: snapshots, the change log, the outbox and source health."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

from monitor.errors import StoreError
from monitor.lean_imports import without
from monitor.models import (
    Change,
    Followed,
    Health,
    Page,
    Previous,
    Snapshot,
    Source,
    Validators,
)
from monitor.store.blobs import Blobs
from monitor.store.changelog import ChangeLogStore
from monitor.store.clock import utc_now
from monitor.store.codec import decode_snapshot, encode_snapshot
from monitor.store.documents import DocumentStore
from monitor.store.events import link_key, title_key
from monitor.store.outbox import OutboxStore, Recipients
from monitor.store.runstate import RunStateStore

# The modules above import it first, through monitor.store.transaction and the same guard.
with without("numpy"):  # see lean_imports
    import sqlite_utils
from monitor.store.schema import ADDED_COLUMNS, SCHEMA
from monitor.store.transaction import immediate

__all__ = ["Recipients", "Store", "utc_now"]
P = ParamSpec("P")
R = TypeVar("R")


def _writes(method: Callable[P, R]) -> Callable[P, R]:
    """A write the round depends on: a full disk or a read-only file is the store's failure (the
    round stops with StoreError), never mistaken for a failure of the source being stored."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            path = getattr(args[0], "path", "")
            raise StoreError(
                f"cannot write the state database {path}: {exc} "
                "(the write was rolled back; free space or make it writable, then run again)"
            ) from None

    return wrapper


def _keys(stored: str) -> frozenset[str]:
    return frozenset(json.loads(stored)) if stored != "[]" else frozenset()  # read for every source


def _database(target: Path | sqlite3.Connection) -> sqlite_utils.Database:
    """Without sqlite-utils' plugins: it would otherwise scan every installed package for them
    (~10 ms a process) and run their hooks on our connection, code written for its command line."""
    return sqlite_utils.Database(target, execute_plugins=False)


class Store(OutboxStore, ChangeLogStore, DocumentStore, RunStateStore):
    def __init__(self, db: sqlite_utils.Database, path: str | Path = ""):
        self.db = db
        self.path = str(path)
        self.blobs = Blobs()

    @classmethod
    def open(cls, path: str | Path, create: bool = True) -> Store:
        path = Path(path)
        if not create and str(path) != ":memory:" and not path.exists():
            raise StoreError(f"no state database at {path} yet (policy-monitor run --once creates it)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = _database(path)
            db.execute("PRAGMA busy_timeout = 10000")
            db.enable_wal()
            # In WAL mode, NORMAL syncs at checkpoints instead of at every commit (one per source
            # per round). A power cut may then undo the last commits, each whole: a snapshot with
            # its outbox rows, so the change is found again next round. Never half of one.
            db.execute("PRAGMA synchronous = NORMAL")
            for table, column, definition in ADDED_COLUMNS:
                if table in db.table_names() and column not in db[table].columns_dict:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
            db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the state database {path}: {exc} (is its folder writable, is the disk full?)"
            ) from None
        return cls(db, path)

    @classmethod
    def open_read_only(cls, path: str | Path) -> Store:
        """For `health`: reads without creating, migrating or writing anything."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no state database at {path} yet (policy-monitor run creates it)")
        try:
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = 1")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # not a database: fails here
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the state database {path}: {exc}") from None
        return cls(_database(conn), path)

    def close(self) -> None:
        self.db.close()

    # --- sources and their state -------------------------------------------------------------

    @_writes
    def sync_sources(self, sources: Sequence[Source]) -> None:
        now = utc_now()
        rows = [
            {
                "id": s.id,
                "regulator": s.regulator,
                "kind": s.kind,
                "url": s.url,
                "name": s.name,
                "topics": json.dumps(list(s.topics)),
                "interval_seconds": s.interval,
                "language": s.language,
                "in_config": 1,
                "updated_at": now,
            }
            for s in sources
        ]
        with immediate(self.db):
            self.db.execute("UPDATE sources SET in_config = 0")
            self.db["sources"].upsert_all(rows, pk="id")

    def state(self, source_id: str) -> Previous:
        """What a round checks first, in one small query: the digests of the last body and region.
        The snapshot and item keys are left out (see `previous`): most rounds never need them."""
        state = self._one("SELECT * FROM source_state WHERE source_id = ?", [source_id])
        if not state:
            return Previous()
        return Previous(
            raw_sha256=state["raw_sha256"],
            validators=Validators(state["etag"], state["last_modified"]),
            region=state["region_sha256"],
            stable_sha256=state.get("stable_sha256") or "",
            noise=state.get("noise") or "",
            snapshot_hash=state["snapshot_hash"],
            pending_removal=_keys(state.get("pending_removal") or "[]"),
        )

    def previous(self, source_id: str, state: Previous) -> Previous:
        """`state` (read by `state` this round) with the stored snapshot and the keys of every
        item ever listed."""
        if not state.snapshot_hash:
            return state
        keys = frozenset(
            r[0] for r in self.db.execute("SELECT key FROM items WHERE source_id = ?", [source_id])
        )
        return replace(state, snapshot=self.snapshot(state.snapshot_hash), known_keys=keys)

    def snapshot(self, digest: str) -> Snapshot | None:
        row = self._one("SELECT kind, title, content FROM snapshots WHERE hash = ?", [digest])
        if not row:
            return None
        return decode_snapshot(row["kind"], row["title"], digest, self.blobs.unpack(row["content"]))

    def baselined(self) -> set[str]:
        """The sources with a stored snapshot: their rounds compare, a new source's parse it all."""
        return {
            row[0] for row in self.db.execute("SELECT source_id FROM source_state WHERE snapshot_hash != ''")
        }

    def held_back(self, source_id: str, reasons: tuple[str, ...]) -> tuple[int, str]:
        """How many of the source's latest fetches in a row failed for one of `reasons` (how their
        errors start), and when the first of them was ('' if none)."""
        rows = self.db.execute(  # newest first, in the index's order; read only as far as the run goes
            "SELECT error, fetched_at FROM fetches WHERE source_id = ? ORDER BY fetched_at DESC, id DESC",
            [source_id],
        )
        count, since = 0, ""
        for error, fetched_at in rows:
            if not (error or "").startswith(reasons):
                break
            count, since = count + 1, fetched_at
        return count, since

    def health(self) -> dict[str, Health]:
        return {row["source_id"]: Health(**row) for row in self.db.query("SELECT * FROM health")}

    # --- one source's round: every write of it in one transaction ----------------------------

    @_writes
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

    @_writes
    def record_failure(self, source: Source, error: str, page: Page | None = None) -> None:
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
                [source.id, now, error, now],
            )

    @_writes
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
                    page.sha256,
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

    @_writes
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

    def _queue_alerts(
        self,
        source_id: str,
        change_ids: Sequence[int],
        changes: Sequence[Change],
        recipients: Recipients,
        now: str,
        window: float = 3 * 86400,
    ) -> int:
        """Queue each change's alert; returns how many on a topic repeat a release already logged
        through another source (their alert is the first sighting's, bar chats it did not reach)."""
        repeats = 0
        for change_id, change in zip(change_ids, changes, strict=True):
            first = self._first_sighting(change_id, source_id, change, now, window)
            if not change.topics:
                continue
            if first is None:
                self.queue(change_id, change.topics, recipients, now)
                continue
            repeats += 1
            # A chat the first sighting did not reach (its topic filter wanted what only this
            # copy's text revealed) still gets this copy; the others already have the release.
            reached = {r[0] for r in self.db.execute("SELECT chat FROM outbox WHERE change_id = ?", [first])}
            others = {chat: only for chat, only in recipients.items() if chat not in reached}
            self.queue(change_id, change.topics, others, now)
        return repeats

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
            "topics": json.dumps(list(change.topics)),
            "matches": json.dumps({k: list(v) for k, v in change.matches.items()}, ensure_ascii=False),
            "fetch_id": fetch_id,
            "old_snapshot": previous.hash if previous else "",
            "new_snapshot": snapshot.hash,
            "raw_sha256": page.sha256,
            "old_raw_sha256": previous_raw,
            "final_url": page.final_url,
            "fetched_at": page.fetched_at,
            "detected_at": now,
            "title_key": title_key(change.title) if change.kind == "new" else "",
            "link_key": link_key(change.link) if change.kind == "new" else "",
            "documents": json.dumps(list(change.documents)),
            "body_status": change.body_status,
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

    def _first_sighting(
        self, change_id: int, source_id: str, change: Change, now: str, window: float
    ) -> int | None:
        """The change that first alerted for this release, if another source saw it within
        `window`: this one is then logged as its duplicate, and that one's alert lists it.

        Same release = same identity (the SFC's feed and its API; English and Chinese under one
        reference number; the HKMA's feed and its API, by link), the same link but for its language
        (the HKMA's /eng/ and /chi/ pages) or the same title from another source (an HKMA release
        re-issued on info.gov.hk "on behalf of the HKMA")."""
        if change.kind != "new":
            return None
        by_key = change.item_key if change.item_key.startswith(("id:", "link:")) else ""
        by_title, by_link = title_key(change.title), link_key(change.link)
        if not (by_key or by_title or by_link):
            return None
        since = (datetime.fromisoformat(now) - timedelta(seconds=window)).isoformat()
        first = next(
            iter(
                self.db.execute(
                    """SELECT id FROM changes
                       WHERE (item_key = ? OR title_key = ? OR link_key = ?) AND source_id != ?
                       AND kind = 'new' AND topics != '[]' AND detected_at >= ? AND id != ?
                       AND duplicate_of IS NULL
                       ORDER BY id LIMIT 1""",
                    [by_key or "\x00", by_title or "\x00", by_link or "\x00", source_id, since, change_id],
                )
            ),
            None,
        )
        if not first:
            return None
        self.db.execute("UPDATE changes SET duplicate_of = ? WHERE id = ?", [first[0], change_id])
        return int(first[0])

    def prune(self, keep_days: int, fetch_records: bool = False, vacuum: bool = True) -> tuple[int, int, int]:
        """Remove raw bodies (and with `fetch_records`, fetch records) older than `keep_days` that
        no change refers to; (bodies, fetch records, bytes reclaimed).

        Bodies a change refers to (its version, or the one before it) are evidence: never removed;
        nor is each source's current body or the current version of each PDF, which the next
        change (or re-upload) will refer to as "before". Fetch records are the record that a
        source was polled and found unchanged (~340 bytes per source per round, some 50 MB a day
        for 3,000 sources every 30 minutes): only on request, and never a change's own record
        or a source's last one.
        """
        cutoff = (datetime.now(UTC) - timedelta(days=keep_days)).isoformat(timespec="seconds")
        size_before = self._file_size()
        with immediate(self.db):
            fetches = 0
            if fetch_records:
                fetches = self.db.execute(
                    """DELETE FROM fetches WHERE fetched_at < ?
                       AND id NOT IN (SELECT fetch_id FROM changes)
                       AND id NOT IN (SELECT max(id) FROM fetches GROUP BY source_id)""",
                    [cutoff],
                ).rowcount
            removed = self.db.execute(
                """DELETE FROM bodies WHERE created_at < ?
                   AND sha256 NOT IN (SELECT raw_sha256 FROM changes)
                   AND sha256 NOT IN (SELECT old_raw_sha256 FROM changes)
                   AND sha256 NOT IN (SELECT raw_sha256 FROM source_state)
                   AND sha256 NOT IN (SELECT sha256 FROM documents)""",
                [cutoff],
            ).rowcount
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if vacuum:  # rewrites the whole file under a lock: a run's write would time out on a big one
            self.db.vacuum()
        return removed, fetches, max(0, size_before - self._file_size())

    def _file_size(self) -> int:
        pages = next(iter(self.db.execute("PRAGMA page_count")))[0]
        size = next(iter(self.db.execute("PRAGMA page_size")))[0]
        return int(pages * size)

    def _one(self, sql: str, params: list) -> dict | None:
        return next(iter(self.db.query(sql, params)), None)
