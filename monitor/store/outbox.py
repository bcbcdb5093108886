"""The outbox (one row per alert and chat) and the chats that receive alerts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from monitor.models import Alert, PartlySent
from monitor.store.changelog import SIGHTINGS, logged_from_row
from monitor.store.clock import utc_now
from monitor.store.transaction import immediate

Recipients = Mapping[str, frozenset[str] | None]  # chat -> its topic filter (None: every topic)
MIGRATED_TO = "migrated to "  # the note of a group's old id, followed by its new one
STOPPED_IN_CHAT = "stopped with /stop"  # the note of a chat that asked for no more alerts
UNREACHABLE = "unreachable: "  # the note of a chat Telegram refused (blocked, kicked, not found), and why
# A chat of TELEGRAM_CHAT_IDS that Telegram refused: the team's still. Its alerts are queued and
# wait, and it is tried again every RETRY_UNREACHABLE (as well as at /start there and at each start).
WAITING = f"origin = 'env' AND active = 0 AND note LIKE '{UNREACHABLE}%'"
RETRY_UNREACHABLE = timedelta(hours=1)


class OutboxStore:
    db: object  # sqlite_utils.Database, set by Store

    def queue(self, change_id: int, topics: Iterable[str], recipients: Recipients, now: str) -> None:
        wanted = set(topics)
        chats = [chat for chat, only in recipients.items() if only is None or wanted & only]
        self.db.conn.executemany(
            "INSERT OR IGNORE INTO outbox (change_id, chat, created_at) VALUES (?, ?, ?)",
            [(change_id, chat, now) for chat in chats],
        )

    def queue_notice(self, text: str, chats: Iterable[str]) -> None:
        now = utc_now()
        with immediate(self.db):
            self.db.conn.executemany(
                "INSERT INTO outbox (notice, chat, created_at) VALUES (?, ?, ?)",
                [(text, chat, now) for chat in chats],
            )

    def pending_chats(self) -> list[str]:
        """Chats with alerts to send: not those deactivated (their rows wait), but for a team chat
        Telegram refused over RETRY_UNREACHABLE ago; the ops chat of notices has no row."""
        retry_before = (datetime.now(UTC) - RETRY_UNREACHABLE).isoformat(timespec="seconds")
        return [
            r[0]
            for r in self.db.execute(
                f"""SELECT DISTINCT chat FROM outbox WHERE status = 'pending' AND chat NOT IN (
                      SELECT chat_id FROM chats
                      WHERE active = 0 AND NOT ({WAITING} AND unreachable_at <= ?))""",
                [retry_before],
            )
        ]

    def pending_alerts(self, chat: str) -> list[Alert]:
        rows = self.db.query(
            f"""SELECT o.id AS outbox_id, o.chat, o.notice, o.created_at AS queued_at, c.*,{SIGHTINGS}
               FROM outbox o LEFT JOIN changes c ON c.id = o.change_id
               WHERE o.status = 'pending' AND o.chat = ? ORDER BY o.id""",
            [chat],
        )
        return [
            Alert(
                r["outbox_id"],
                r["chat"],
                logged_from_row(r) if r["id"] else None,
                r["queued_at"],
                r["notice"],
            )
            for r in rows
        ]

    def mark_sent(self, outbox_id: int, message_id: str = "") -> None:
        self.db.execute(
            "UPDATE outbox SET status = 'sent', sent_at = ?, message_id = ?, attempts = attempts + 1 WHERE id = ?",
            [utc_now(), message_id, outbox_id],
        )

    def mark_all_sent(
        self, outbox_ids: Iterable[int], message_id: str = "", buttons: tuple[int, str, str] | None = None
    ) -> None:
        """A digest's rows, all at once: a crash cannot leave part of a sent digest pending.
        `buttons`: (change id, chat, message id) of the message that carries its review buttons."""
        ids = list(outbox_ids)
        with immediate(self.db):
            for outbox_id in ids:
                self.mark_sent(outbox_id, message_id)
            if buttons:
                self.record_buttons(*buttons)
            marks = ", ".join("?" * len(ids))  # a long message's progress, kept under its first row
            self.db.execute(f"DELETE FROM outbox_progress WHERE outbox_id IN ({marks})", ids)

    def record_parts_sent(self, message: PartlySent) -> None:
        """How far a long message got, saved after each part, under its first row."""
        self.db.execute(
            """INSERT INTO outbox_progress (outbox_id, outbox_ids, text, parts_sent, message_id)
               VALUES (?, ?, ?, ?, ?) ON CONFLICT (outbox_id) DO UPDATE SET parts_sent = excluded.parts_sent""",
            [message.outbox_ids[0], json.dumps(message.outbox_ids), message.text, message.parts_sent,
             message.message_id],
        )  # fmt: skip

    def partly_sent(self, alerts: Iterable[Alert]) -> list[PartlySent]:
        """The long messages these pending alerts are in, begun and not finished."""
        pending = {alert.outbox_id for alert in alerts}
        return [
            PartlySent(tuple(json.loads(ids)), text, parts, message_id)
            for first, ids, text, parts, message_id in self.db.execute(
                "SELECT outbox_id, outbox_ids, text, parts_sent, message_id FROM outbox_progress ORDER BY outbox_id"
            )
            if first in pending
        ]

    def env_chats(self) -> set[str]:
        """The chats of TELEGRAM_CHAT_IDS, one that asked to stop or that Telegram refused included
        (the team may /start there again)."""
        rows = self.db.execute(
            f"SELECT chat_id FROM chats WHERE origin = 'env' AND (active = 1 OR note = ? OR ({WAITING}))",
            [STOPPED_IN_CHAT],
        )
        return {r[0] for r in rows}

    def mark_attempts(self, chats: Iterable[str], error: str) -> None:
        """Telegram could not be reached at all: every pending row of these chats says so."""
        listed = list(chats)
        self.db.execute(
            f"""UPDATE outbox SET attempts = attempts + 1, last_error = ?
                WHERE status = 'pending' AND chat IN ({", ".join("?" * len(listed))})""",
            [error, *listed],
        )

    def mark_attempt(self, outbox_id: int, error: str) -> None:
        """A failed attempt: the row stays pending and is sent by the next delivery."""
        self.db.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", [error, outbox_id]
        )

    # --- chats ----------------------------------------------------------------------------------

    def sync_env_chats(self, chats: Iterable[str]) -> list[str]:
        """Chats named in TELEGRAM_CHAT_IDS are always subscribed (to every topic, unless narrowed),
        and re-enabled at each start: an operator who fixed the bot's rights expects it to work.
        Not one that asked to stop with /stop: it said so, and /start there resumes. A chat taken
        out of TELEGRAM_CHAT_IDS stops receiving alerts. Returns the listed chats kept stopped."""
        now, listed = utc_now(), [self.followed(chat) for chat in chats]
        marks = ", ".join("?" * len(listed))
        with immediate(self.db):
            # its pending rows stay (a deactivated chat is not sent to): a chat id mistyped for one
            # start must not lose them; put back in the list, it gets them
            self.db.execute(
                f"""UPDATE chats SET active = 0, note = 'removed from TELEGRAM_CHAT_IDS'
                    WHERE origin = 'env' AND (active = 1 OR ({WAITING})) AND chat_id NOT IN ({marks})""",
                listed,
            )
            self.db.execute(  # one that had sent /stop is no longer the team's, and stays stopped
                f"UPDATE chats SET origin = 'bot' WHERE origin = 'env' AND note = ? AND chat_id NOT IN ({marks})",
                [STOPPED_IN_CHAT, *listed],
            )
            self.db.conn.executemany(
                """INSERT INTO chats (chat_id, active, origin, added_at) VALUES (?, 1, 'env', ?)
                   ON CONFLICT (chat_id) DO UPDATE SET origin = 'env',
                     active = CASE WHEN note = ? THEN active ELSE 1 END,
                     note = CASE WHEN note = ? THEN note ELSE '' END""",
                [(chat, now, STOPPED_IN_CHAT, STOPPED_IN_CHAT) for chat in listed],
            )
            stopped = self.db.execute(
                f"SELECT chat_id FROM chats WHERE active = 0 AND note = ? AND chat_id IN ({marks})",
                [STOPPED_IN_CHAT, *listed],
            )
            return [row[0] for row in stopped]

    def followed(self, chat: str) -> str:
        """The id a chat of TELEGRAM_CHAT_IDS has now: a group that became a supergroup has a new
        one, which Telegram told us once (the operator should update the list; until then, this)."""
        seen = {chat}
        while True:
            row = next(iter(self.db.execute("SELECT note FROM chats WHERE chat_id = ?", [chat])), None)
            note = (row[0] or "") if row else ""
            moved_to = note.removeprefix(MIGRATED_TO)
            if moved_to == note or moved_to in seen:  # not migrated (or a cycle): this is the id
                return chat
            chat = moved_to
            seen.add(chat)

    def recipients(self) -> dict[str, frozenset[str] | None]:
        """The chats a change is queued for: the subscribed, and team chats Telegram refused for now
        (their alerts wait for them)."""
        rows = self.db.execute(
            f"SELECT chat_id, topics FROM chats WHERE active = 1 OR ({WAITING}) ORDER BY added_at"
        )
        return {chat: None if topics is None else frozenset(json.loads(topics)) for chat, topics in rows}

    def stopped(self, chat: str) -> bool:
        """Whether the chat asked for no more alerts with /stop (and has not sent /start since)."""
        rows = self.db.execute(
            "SELECT 1 FROM chats WHERE chat_id = ? AND active = 0 AND note = ?", [chat, STOPPED_IN_CHAT]
        )
        return next(iter(rows), None) is not None

    def chat_topics(self, chat: str) -> frozenset[str] | None:
        return self.recipients().get(chat)

    def subscribe(self, chat: str, topics: frozenset[str] | None = None) -> None:
        value = None if topics is None else json.dumps(sorted(topics))
        self.db.execute(
            """INSERT INTO chats (chat_id, active, topics, added_at) VALUES (?, 1, ?, ?)
               ON CONFLICT (chat_id) DO UPDATE SET active = 1, topics = excluded.topics, note = ''""",
            [chat, value, utc_now()],
        )

    def stop_chat(self, chat: str) -> None:
        """The chat asked to stop (/stop): nothing more is queued for it, and what waited is dropped."""
        with immediate(self.db):
            self.db.execute(
                "UPDATE chats SET active = 0, note = ? WHERE chat_id = ?", [STOPPED_IN_CHAT, chat]
            )
            self._forget_parts_sent(chat)
            self.db.execute(
                "UPDATE outbox SET status = 'undeliverable', last_error = ? WHERE chat = ? AND status = 'pending'",
                [STOPPED_IN_CHAT, chat],
            )

    def mark_unreachable(self, chat: str, reason: str) -> None:
        """Telegram refused the chat (the bot blocked or kicked, the chat not found). Its pending rows
        wait. A team chat (TELEGRAM_CHAT_IDS) is still queued for and tried again later (see
        WAITING); another chat, someone's /start, gets nothing more until /start there."""
        self.db.execute(
            "UPDATE chats SET active = 0, note = ?, unreachable_at = ? WHERE chat_id = ?",
            [UNREACHABLE + reason, utc_now(), chat],
        )

    def reached(self, chat: str) -> None:
        """A message reached a chat Telegram had refused: it is subscribed again as it was."""
        self.db.execute(f"UPDATE chats SET active = 1, note = '' WHERE chat_id = ? AND ({WAITING})", [chat])

    def migrate_chat(self, old: str, new: str) -> None:
        """A group became a supergroup with a new id: its subscription and pending alerts move with it."""
        with immediate(self.db):
            # A chat that asked to stop stays stopped under its new id; a team chat Telegram had
            # refused answered now (with the migration): its new id takes alerts.
            self.db.execute(
                f"""INSERT OR IGNORE INTO chats (chat_id, active, topics, origin, added_at, note)
                    SELECT ?, CASE WHEN {WAITING} THEN 1 ELSE active END, topics, origin, added_at,
                      CASE WHEN note = ? THEN note ELSE 'migrated from ' || chat_id END
                    FROM chats WHERE chat_id = ?""",
                [new, STOPPED_IN_CHAT, old],
            )
            self.db.execute(
                "UPDATE chats SET active = 0, note = ? WHERE chat_id = ?", [f"{MIGRATED_TO}{new}", old]
            )
            # A long message begun in the old group goes whole to the new one: its members see that.
            self._forget_parts_sent(old)
            # An alert the new id already has (it was subscribed too) is not moved, so not sent twice.
            self.db.execute(
                """UPDATE outbox SET status = 'migrated' WHERE chat = ? AND status = 'pending'
                   AND change_id IN (SELECT change_id FROM outbox WHERE chat = ?)""",
                [old, new],
            )
            self.db.execute("UPDATE outbox SET chat = ? WHERE chat = ? AND status = 'pending'", [new, old])

    def _forget_parts_sent(self, chat: str) -> None:
        self.db.execute(
            """DELETE FROM outbox_progress
               WHERE outbox_id IN (SELECT id FROM outbox WHERE chat = ? AND status = 'pending')""",
            [chat],
        )

    def bot_value(self, key: str, default: str = "") -> str:
        row = next(iter(self.db.execute("SELECT value FROM bot_state WHERE key = ?", [key])), None)
        return row[0] if row else default

    def bot_values(self, prefix: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT key, value FROM bot_state WHERE substr(key, 1, ?) = ?", [len(prefix), prefix]
        )
        return dict(rows)

    def forget_bot_value(self, key: str) -> None:
        self.db.execute("DELETE FROM bot_state WHERE key = ?", [key])

    def set_bot_value(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO bot_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )
