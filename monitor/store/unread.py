"""New items whose text could not be read when they were found (the detail page down, the round's
detail_limit spent): read again in later rounds, so that a release whose title names no topic but
whose text does still alerts, late, once its page answers."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.models import Change, Followed, LoggedChange, Source
from monitor.store.clock import utc_now
from monitor.store.outbox import Recipients
from monitor.store.transaction import immediate, writes

# What a later round would meet again: not worth a fetch every round.
FOR_GOOD = (
    "not fetched: the item has no link or id%",
    "not fetched: the detail page has no readable text%",
    "not fetched: refused a link%",
    "not fetched: not a URL%",
)


class UnreadStore:
    db: object  # sqlite_utils.Database, set by Store

    def unread_items(self, source_id: str, since: str, limit: int) -> list[LoggedChange]:
        """The source's new items found since `since` whose text was not read, on no topic by their
        title (an alerted one has its alert), oldest first."""
        skip = " ".join("AND body_status NOT LIKE ?" for _ in FOR_GOOD)
        rows = self.db.execute(
            f"""SELECT id FROM changes
                WHERE source_id = ? AND detected_at >= ? AND kind = 'new'
                AND topics = '[]' AND duplicate_of IS NULL AND body_status LIKE 'not fetched: %' {skip}
                ORDER BY id LIMIT ?""",
            [source_id, since, *FOR_GOOD, limit],
        )
        return [self.change(change_id) for (change_id,) in list(rows)]

    @writes
    def record_read_later(
        self,
        source: Source,
        read: Sequence[tuple[int, Change]],
        followed: Followed,
        recipients: Recipients,
        window: float,
    ) -> int:
        """The text of items read on a later round, classified: each logged change gets its topics
        and documents, and one on a topic its alert now. One transaction. Returns the repeats (see
        _queue_alerts)."""
        now = utc_now()
        with immediate(self.db):
            self.put_documents(followed.documents, followed.pages, now)
            for change_id, change in read:
                self.db.execute(
                    "UPDATE changes SET topics = ?, matches = ?, documents = ?, body_status = ? WHERE id = ?",
                    [
                        json.dumps(list(change.topics)),
                        json.dumps({k: list(v) for k, v in change.matches.items()}, ensure_ascii=False),
                        json.dumps(list(change.documents)),
                        change.body_status,
                        change_id,
                    ],
                )
            ids, changes = [i for i, _ in read], [c for _, c in read]
            return self._queue_alerts(source.id, ids, changes, recipients, now, window)
