"""Queueing a change's alert, and knowing a release seen before through another source (the
SFC's feed and its API, a release in English and in Chinese): logged as a duplicate, alerted once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from monitor.models import Change
from monitor.store.events import other_reference, release_keys, same_event
from monitor.store.outbox import Recipients


class SightingStore:
    db: object  # sqlite_utils.Database, set by Store

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

    def _first_sighting(
        self, change_id: int, source_id: str, change: Change, now: str, window: float
    ) -> int | None:
        """The change that first alerted for this release (see `first_sighting`): this one is
        then logged as its duplicate, and that one's alert lists it."""
        first = self.first_sighting(source_id, change, now, window, change_id)
        if first is not None:
            self.db.execute("UPDATE changes SET duplicate_of = ? WHERE id = ?", [first, change_id])
        return first

    def first_sighting(
        self, source_id: str, change: Change, now: str, window: float, change_id: int = 0
    ) -> int | None:
        """The logged change of another source that alerted for the same release within `window`
        before `now` (see events.release_keys), if any. Found through any copy of it: the
        Government's Chinese copy shares its title with the HKMA's Chinese one, itself a repeat
        of the HKMA's English one, which alerted."""
        keys = release_keys(change)
        if not any(keys):
            return None
        since = (datetime.fromisoformat(now) - timedelta(seconds=window)).isoformat()
        candidates = self.db.execute(
            """SELECT COALESCE(c.duplicate_of, c.id), c.item_key, c.before FROM changes c
               LEFT JOIN changes first ON first.id = c.duplicate_of
               WHERE (c.item_key = ? OR c.title_key = ? OR c.link_key = ?) AND c.source_id != ?
               AND COALESCE(first.source_id, c.source_id) != ?
               AND c.kind = ? AND c.topics != '[]' AND c.detected_at >= ? AND c.id != ?
               AND COALESCE(first.detected_at, c.detected_at) >= ?
               ORDER BY c.id LIMIT 20""",
            [*(key or "\x00" for key in keys), source_id, source_id, change.kind, since, change_id, since],
        )
        return next(
            (
                int(first)
                for first, key, before in candidates
                if not other_reference(key, change.item_key) and same_event(before, change.before)
            ),
            None,
        )
