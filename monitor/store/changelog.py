"""Reading the change log (with review state and evidence) and recording reviews."""

from __future__ import annotations

import json
from collections.abc import Collection

from monitor.errors import InvalidTransition, UnknownChange
from monitor.models import REVIEW_TRANSITIONS, Change, ChangeFilter, LoggedChange, Review, Sighting
from monitor.store.blobs import Blobs
from monitor.store.clock import utc_now
from monitor.store.transaction import immediate

# Every change row comes with its review state, its source's language and the other sources
# the same release was seen through (its duplicates), as a JSON list.
SIGHTINGS = """
           COALESCE((SELECT s.language FROM sources s WHERE s.id = c.source_id), '') AS language,
           (SELECT json_group_array(json_array(d.source_id, d.link, COALESCE(ds.language, ''), d.title))
              FROM changes d LEFT JOIN sources ds ON ds.id = d.source_id
              WHERE d.duplicate_of = c.id) AS seen_in"""
SELECT_CHANGES = f"""
    SELECT c.*, f.http_status, f.headers,
           COALESCE((SELECT r.state FROM reviews r WHERE r.change_id = c.id ORDER BY r.id DESC LIMIT 1),
                    'new') AS state,{SIGHTINGS}
    FROM changes c JOIN fetches f ON f.id = c.fetch_id
"""


class ChangeLogStore:
    db: object  # sqlite_utils.Database, set by Store
    blobs: Blobs

    def changes(self, only: ChangeFilter = ChangeFilter()) -> list[LoggedChange]:  # noqa: B008 (frozen)
        where, params = ["1 = 1"], []
        for column, value in (("c.source_id", only.source_id), ("c.regulator", only.regulator)):
            if value:
                where.append(f"{column} = ? COLLATE NOCASE")
                params.append(value)
        if only.topic:
            where.append("EXISTS (SELECT 1 FROM json_each(c.topics) WHERE value = ?)")
            params.append(only.topic.lower())
        if only.since:
            where.append("c.detected_at >= ?")
            params.append(only.since)
        if only.until:
            where.append("c.detected_at < ?")
            params.append(only.until)
        sql = f"SELECT * FROM ({SELECT_CHANGES} WHERE {' AND '.join(where)}) WHERE ? IN ('', state) ORDER BY id DESC"
        params.append(only.state)
        if only.limit:
            sql += f" LIMIT {int(only.limit)}"
        return [logged_from_row(r) for r in self.db.query(sql, params)]

    def filter_values(self) -> dict[str, set[str]]:
        """What `--source`, `--regulator` and `--topic` can name: every source ever in the config,
        its regulator, and every topic a source or a logged change names."""
        sources = list(self.db.execute("SELECT id, regulator, topics FROM sources"))
        logged = list(self.db.execute("SELECT DISTINCT source_id, regulator FROM changes"))
        topics = {t for _, _, named in sources for t in json.loads(named or "[]")}
        topics |= {
            r[0] for r in self.db.execute("SELECT DISTINCT j.value FROM changes c, json_each(c.topics) j")
        }
        return {  # a change keeps the regulator it was logged under, renamed in the config since
            "--source": {s for s, _, _ in sources} | {s for s, _ in logged},
            "--regulator": {r for _, r, _ in sources} | {r for _, r in logged},
            "--topic": topics,
        }

    def change(self, change_id: int) -> LoggedChange:
        row = self._one(f"{SELECT_CHANGES} WHERE c.id = ?", [change_id])
        if not row:
            raise UnknownChange(f"no change with id {change_id} (see `policy-monitor log`)")
        return logged_from_row(row)

    def recent(self, topics: frozenset[str] | None, limit: int) -> list[LoggedChange]:
        """The last alerted changes a chat with this topic filter would have received (a release
        seen through two sources once: its repeat was not alerted)."""
        logged = self.changes(ChangeFilter(limit=limit * 20 + 50))
        alerted = [c for c in logged if c.change.topics and not c.duplicate_of]
        if topics is not None:
            alerted = [c for c in alerted if topics & set(c.change.topics)]
        return alerted[:limit]

    def reviews(self, change_id: int) -> list[Review]:
        rows = self.db.query("SELECT * FROM reviews WHERE change_id = ? ORDER BY id", [change_id])
        return [Review(r["change_id"], r["state"], r["by"], r["note"], r["at"]) for r in rows]

    def add_review(self, change_id: int, state: str, by: str, note: str = "") -> Review:
        """Append a review; the history is never rewritten (triggers refuse UPDATE and DELETE)."""
        with immediate(self.db):
            current = self.change(change_id).state
            allowed = REVIEW_TRANSITIONS.get(current, ())
            if not allowed:
                raise InvalidTransition(
                    f"change {change_id} is already {current}, which closes it: it stays so"
                )
            if state not in allowed:
                raise InvalidTransition(
                    f"change {change_id} is {current}: it can become {', '.join(allowed)}, not {state}"
                )
            review = Review(change_id, state, by, note, utc_now())
            self.db["reviews"].insert(review.__dict__)
            # Its repeats (the release through other sources) that sent no alert of their own are
            # reviewed with it: they have no buttons, and would stay in every inbox of new changes.
            # A repeat alerted to chats this one did not reach is that team's to review.
            repeat_note = f"with #{change_id}, which alerted for this release" + (f": {note}" if note else "")
            repeats = self.db.execute(
                """SELECT id FROM changes c WHERE duplicate_of = ?
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.change_id = c.id)""",
                [change_id],
            )
            for (repeat,) in list(repeats):
                if state in REVIEW_TRANSITIONS.get(self.change(repeat).state, ()):
                    self.db["reviews"].insert(Review(repeat, state, by, repeat_note, review.at).__dict__)
        return review

    def earlier_topics(
        self, source_id: str, item_keys: Collection[str]
    ) -> dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]]:
        """Each item's topics and matched terms from its latest logged change on a topic."""
        marks = ",".join("?" * len(item_keys))
        rows = self.db.execute(
            f"""SELECT item_key, topics, matches FROM changes WHERE item_key IN ({marks})
                AND source_id = ? AND topics != '[]' ORDER BY id""",
            [*sorted(item_keys), source_id],
        )
        return {
            key: (tuple(json.loads(topics)), {k: tuple(v) for k, v in json.loads(matches).items()})
            for key, topics, matches in rows
        }

    def last_removed_lines(self, source_id: str) -> tuple[str, ...]:
        """The lines the source's last logged page change removed."""
        row = self._one(
            "SELECT removed FROM changes WHERE source_id = ? AND kind = 'page' ORDER BY id DESC LIMIT 1",
            [source_id],
        )
        return tuple(json.loads(row["removed"])) if row else ()

    def body(self, sha256: str) -> bytes | None:
        """The exact bytes of a stored raw body, or None when it was never stored or was pruned."""
        row = self._one("SELECT content FROM bodies WHERE sha256 = ?", [sha256])
        return self.blobs.unpack(row["content"]) if row else None

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
        documents=tuple(json.loads(row.get("documents") or "[]")),
        body_status=row.get("body_status") or "",
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
        old_raw_sha256=row.get("old_raw_sha256") or "",
        http_status=row.get("http_status") or 0,
        headers=json.loads(row.get("headers") or "{}"),
        state=row.get("state") or "new",
        language=row.get("language") or "",
        seen_in=tuple(Sighting(*seen) for seen in json.loads(row.get("seen_in") or "[]")),
        duplicate_of=row.get("duplicate_of") or 0,
    )
