"""Removing old raw bodies and fetch records that no change refers to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.store.transaction import immediate

NOTHING_NEW = ("unchanged", "not_modified", "updated")  # the fetch records prune may remove
PRUNE_BATCH = 5000  # rows a transaction
# Each source's latest fetch records stay, whatever their age: the guards count a source's latest
# refusals in a row from them, and a poll between two runs of refusals, pruned, would join them.
KEEP_LATEST = 20


class PruneStore:
    db: object  # sqlite_utils.Database, set by Store

    def prune(self, keep_days: int, fetch_records: bool = False, vacuum: bool = True) -> tuple[int, int, int]:
        """Remove raw bodies (and with `fetch_records`, fetch records) older than `keep_days` that
        no change refers to; (bodies, fetch records, bytes reclaimed).

        Bodies a change refers to (its version, or the one before it) are evidence: never removed;
        nor is each source's current body or the current version of each PDF, which the next
        change (or re-upload) will refer to as "before". Fetch records are the record that a
        source was polled and found nothing new (~340 bytes per source per round, some 50 MB a day
        for 3,000 sources every 30 minutes): only on request, and never a change's own record, a
        source's latest KEEP_LATEST, a baseline, a document's or a failed poll's (when was a source not
        watched is a question an audit asks; the guards count a source's refusals from them).
        """
        cutoff = (datetime.now(UTC) - timedelta(days=keep_days)).isoformat(timespec="seconds")
        size_before = self._file_size()
        fetches = 0
        if fetch_records:
            conn = self.db.conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS prune_keep (id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.prune_keep")
            conn.execute(
                "INSERT OR IGNORE INTO temp.prune_keep SELECT fetch_id FROM changes WHERE fetch_id IS NOT NULL"
            )
            sources = [row[0] for row in conn.execute("SELECT DISTINCT source_id FROM fetches")]
            for source_id in sources:  # each source's latest, from its index: what the guards read
                conn.execute(
                    """INSERT OR IGNORE INTO temp.prune_keep SELECT id FROM fetches WHERE source_id = ?
                       ORDER BY fetched_at DESC, id DESC LIMIT ?""",
                    [source_id, KEEP_LATEST],
                )
            (newest,) = conn.execute("SELECT COALESCE(max(id), 0) FROM fetches").fetchone()
            conn.commit()  # the temp table's writes opened a transaction: the batches take their own
            fetches = self._in_batches(  # not a record a running round wrote since (id > newest)
                """DELETE FROM fetches WHERE id IN (SELECT id FROM fetches WHERE fetched_at < ? AND id <= ?
                     AND status IN (?, ?, ?) AND id NOT IN (SELECT id FROM temp.prune_keep) LIMIT ?)""",
                [cutoff, newest, *NOTHING_NEW],
            )
            conn.execute("DROP TABLE temp.prune_keep")
            conn.commit()
        removed = self._in_batches(
            """DELETE FROM bodies WHERE sha256 IN (SELECT sha256 FROM bodies WHERE created_at < ?
                 AND sha256 NOT IN (SELECT raw_sha256 FROM changes)
                 AND sha256 NOT IN (SELECT old_raw_sha256 FROM changes)
                 AND sha256 NOT IN (SELECT raw_sha256 FROM source_state)
                 AND sha256 NOT IN (SELECT sha256 FROM documents) LIMIT ?)""",
            [cutoff],
        )
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if vacuum:  # rewrites the whole file under a lock: a run's write would time out on a big one
            self.db.vacuum()
        return removed, fetches, max(0, size_before - self._file_size())

    def _in_batches(self, delete: str, params: list) -> int:
        """Run `delete` (its last parameter a LIMIT) until it removes nothing, PRUNE_BATCH rows a
        transaction: a running round waits for each a moment, not for the whole prune (a month of
        fetch records is millions of rows: one transaction held the lock past its 10 s patience)."""
        total = 0
        while True:
            with immediate(self.db):
                count = self.db.execute(delete, [*params, PRUNE_BATCH]).rowcount
            total += count
            if count < PRUNE_BATCH:
                return total

    def _file_size(self) -> int:
        pages = next(iter(self.db.execute("PRAGMA page_count")))[0]
        size = next(iter(self.db.execute("PRAGMA page_size")))[0]
        return int(pages * size)
