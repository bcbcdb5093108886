"""The messages that carry a change's review buttons: which review each shows, and which show an
older one than the change has (reviewed since from another chat, or with `policy-monitor review`)."""

from __future__ import annotations

from monitor.models import Review


class ReviewMarkStore:
    db: object  # sqlite_utils.Database, set by Store

    def record_buttons(self, change_id: int, chat: str, message_id: str) -> None:
        """A message with the change's review buttons went out (call inside the delivery's
        transaction). They are the buttons of an alert not reviewed yet: a review made before it
        went out (while the chat waited) is drawn at the next delivery."""
        self.db.execute(
            "INSERT OR IGNORE INTO alert_messages (chat, message_id, change_id, shown_review) VALUES (?, ?, ?, 0)",
            [chat, message_id, change_id],
        )

    def stale_marks(self, limit: int = 200) -> list[tuple[str, str, int, Review]]:
        """(chat, message id, review id, review) of each message whose buttons show an older review
        than the change's latest, oldest review first."""
        rows = self.db.execute(
            """SELECT a.chat, a.message_id, r.id, r.change_id, r.state, r.by, r.note, r.at
               FROM alert_messages a
               JOIN reviews r ON r.id = (SELECT max(id) FROM reviews WHERE change_id = a.change_id)
               WHERE r.id > a.shown_review ORDER BY r.id LIMIT ?""",
            [limit],
        )
        return [(chat, message, review_id, Review(*review)) for chat, message, review_id, *review in rows]

    def mark_shown(self, chat: str, message_id: str, review_id: int = 0) -> None:
        """The message's buttons show review `review_id` (0: the change's latest), or never will
        (the message is gone, or too old to edit)."""
        self.db.execute(
            """UPDATE alert_messages SET shown_review = CASE WHEN ? > 0 THEN ?
                 ELSE COALESCE((SELECT max(id) FROM reviews WHERE change_id = alert_messages.change_id), 0) END
               WHERE chat = ? AND message_id = ?""",
            [review_id, review_id, chat, message_id],
        )
