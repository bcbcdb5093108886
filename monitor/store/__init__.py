"""The only module that touches SQLite: snapshots, the change log, the outbox and source health."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.errors import StoreError
from monitor.lean_imports import without
from monitor.store.blobs import Blobs
from monitor.store.changelog import ChangeLogStore
from monitor.store.clock import utc_now
from monitor.store.documents import DocumentStore
from monitor.store.marks import ReviewMarkStore
from monitor.store.outbox import OutboxStore, Recipients
from monitor.store.prune import PruneStore
from monitor.store.rounds import RoundStore
from monitor.store.runstate import RunStateStore
from monitor.store.sightings import SightingStore
from monitor.store.sources import SourceStore
from monitor.store.unread import UnreadStore

# The modules above import it first, through monitor.store.transaction and the same guard.
with without("numpy"):  # see lean_imports
    import sqlite_utils
from monitor.store.schema import ADDED_COLUMNS, SCHEMA

__all__ = ["Recipients", "Store", "utc_now"]


def _database(target: Path | sqlite3.Connection) -> sqlite_utils.Database:
    """Without sqlite-utils' plugins: it would otherwise scan every installed package for them
    (~10 ms a process) and run their hooks on our connection, code written for its command line."""
    return sqlite_utils.Database(target, execute_plugins=False)


class Store(
    SourceStore,
    RoundStore,
    SightingStore,
    UnreadStore,
    PruneStore,
    OutboxStore,
    ReviewMarkStore,
    ChangeLogStore,
    DocumentStore,
    RunStateStore,
):
    """The state database: one class, one connection; each part of it in its own module."""

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
