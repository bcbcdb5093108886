"""Reading the change log: filtered lists and single changes, as LoggedChange records."""

from __future__ import annotations

import json

from monitor.errors import UnknownChange
from monitor.models import Change, LoggedChange


class ChangeLogStore:
    db: object  # sqlite_utils.Database, set by Store

    def changes(
        self,
        source_id: str = "",
        topic: str = "",
        since: str = "",
        limit: int = 0,
    ) -> list[LoggedChange]:
        where, params = ["1 = 1"], []
        if source_id:
            where.append("source_id = ?")
            params.append(source_id)
        if topic:
            where.append("EXISTS (SELECT 1 FROM json_each(changes.topics) WHERE value = ?)")
            params.append(topic.lower())
        if since:
            where.append("detected_at >= ?")
            params.append(since)
        sql = f"SELECT * FROM changes WHERE {' AND '.join(where)} ORDER BY id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [logged_from_row(r) for r in self.db.query(sql, params)]

    def change(self, change_id: int) -> LoggedChange:
        row = self._one("SELECT * FROM changes WHERE id = ?", [change_id])
        if not row:
            raise UnknownChange(f"no change with id {change_id} (see `policy-monitor log`)")
        return logged_from_row(row)

    def _one(self, sql: str, params: list) -> dict | None:
        return next(iter(self.db.query(sql, params)), None)

    def recent(self, topics: frozenset[str] | None, limit: int) -> list[LoggedChange]:
        """The last alerted changes a chat with this topic filter would have received."""
        alerted = [c for c in self.changes(limit=limit * 20 + 50) if c.change.topics]
        if topics is not None:
            alerted = [c for c in alerted if topics & set(c.change.topics)]
        return alerted[:limit]

    def _one(self, sql: str, params: list) -> dict | None:
        return next(iter(self.db.query(sql, params)), None)


def logged_from_row(row: dict) -> LoggedChange:
    change = Change(
        source_id=row["source_id"],
        kind=row["kind"],
        title=row["title"],
        item_key=row["item_key"],
        link=row["link"],
        date=row["date"],
        text=row["text"],
        before=row["before"],
        added=tuple(json.loads(row["added"])),
        removed=tuple(json.loads(row["removed"])),
        diff=row["diff"],
        topics=tuple(json.loads(row["topics"])),
        matches={k: tuple(v) for k, v in json.loads(row["matches"]).items()},
    )
    return LoggedChange(
        id=row["id"],
        regulator=row["regulator"],
        detected_at=row["detected_at"],
        fetched_at=row["fetched_at"],
        change=change,
        old_snapshot=row["old_snapshot"],
        new_snapshot=row["new_snapshot"],
        raw_sha256=row["raw_sha256"],
        final_url=row["final_url"],
    )
