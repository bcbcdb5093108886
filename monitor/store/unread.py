"""New items whose text could not be read when they were found (the detail page down or not filled
in yet, a PDF it links to down, the round's detail_limit spent): read again in later rounds, so that a release whose title names no topic but
whose text does still alerts, late, once its page answers."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.models import Change, Followed, LoggedChange, Source
from monitor.store.clock import utc_now
from monitor.store.outbox import Recipients
from monitor.store.rounds import read_columns
from monitor.store.transaction import immediate, writes

# What a later round would meet again: not worth a fetch every round.
FOR_GOOD = (
    "not fetched: the item has no link or id%",
    "not fetched: refused a link%",
    "not fetched: not a URL%",
)
MAX_TRIES = 12  # later rounds that try an item's text: a page that keeps failing is left then


class UnreadStore:
    db: object  # sqlite_utils.Database, set by Store

    def unread_items(self, source_id: str, since: str, limit: int) -> list[LoggedChange]:
        """The source's new items found since `since` whose text was not read, on no topic by their
        title (an alerted one has its alert): those tried again the fewest times first, so that a
        page that keeps failing does not take every turn, and none tried MAX_TRIES times."""
        skip = " ".join("AND c.body_status NOT LIKE ?" for _ in FOR_GOOD)
        rows = self.db.execute(
            f"""SELECT c.id FROM changes c LEFT JOIN unread_tries t ON t.change_id = c.id
                WHERE c.source_id = ? AND c.detected_at >= ? AND c.kind = 'new' AND c.topics = '[]'
                AND c.duplicate_of IS NULL {skip}
                AND (c.body_status LIKE 'not fetched: %' OR c.body_status LIKE 'partly read: %')
                AND COALESCE(t.tries, 0) < ?
                ORDER BY COALESCE(t.tries, 0), c.id LIMIT ?""",
            [source_id, since, *FOR_GOOD, MAX_TRIES, limit],
        )
        return [self.change(change_id) for (change_id,) in list(rows)]

    @writes
    def record_read_later(
        self,
        source: Source,
        read: Sequence[tuple[int, Change]],
        unread: Sequence[tuple[int, str]],
        followed: Followed,
        recipients: Recipients,
        window: float,
    ) -> int:
        """The text of items read on a later round, classified: each logged change gets its topics
        and documents, and one on a topic its alert now; `unread`: (change id, why) of those whose
        text could not be read this time either. One transaction. Returns the repeats (see
        _queue_alerts)."""
        now = utc_now()
        with immediate(self.db):
            self.db.conn.executemany(
                """INSERT INTO unread_tries (change_id, tries, last_error, tried_at) VALUES (?, 1, ?, ?)
                   ON CONFLICT (change_id) DO UPDATE SET tries = tries + 1,
                     last_error = excluded.last_error, tried_at = excluded.tried_at""",
                [(change_id, why, now) for change_id, why in unread],
            )
            self.put_documents(followed.documents, followed.pages, now)
            for change_id, change in read:
                columns = read_columns(change)
                assignments = ", ".join(f"{name} = ?" for name in columns)
                self.db.execute(
                    f"UPDATE changes SET {assignments} WHERE id = ?", [*columns.values(), change_id]
                )
            ids, changes = [i for i, _ in read], [c for _, c in read]
            return self._queue_alerts(source.id, ids, changes, recipients, now, window)
