"""The sources as configured, and what each one's next round starts from: its last digests,
snapshot and item keys, and its health."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace

from monitor.models import Health, Previous, Snapshot, Source, Validators
from monitor.store.blobs import Blobs
from monitor.store.clock import utc_now
from monitor.store.codec import decode_snapshot
from monitor.store.transaction import immediate, writes


def _keys(stored: str) -> frozenset[str]:
    return frozenset(json.loads(stored)) if stored != "[]" else frozenset()  # read for every source


class SourceStore:
    db: object  # sqlite_utils.Database, set by Store
    blobs: Blobs

    @writes
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
        keys = dict(self.db.execute("SELECT key, title FROM items WHERE source_id = ?", [source_id]))
        withdrawn = dict(  # removals logged and not followed by another change of the item
            self.db.execute(
                """SELECT item_key, detected_at FROM changes c WHERE source_id = ? AND kind = 'removed'
                   AND NOT EXISTS (SELECT 1 FROM changes l WHERE l.item_key = c.item_key
                                   AND l.source_id = c.source_id AND l.id > c.id)""",
                [source_id],
            )
        )
        return replace(
            state, snapshot=self.snapshot(state.snapshot_hash), known_keys=keys, withdrawn=withdrawn
        )

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

    def _one(self, sql: str, params: list) -> dict | None:
        return next(iter(self.db.query(sql, params)), None)
