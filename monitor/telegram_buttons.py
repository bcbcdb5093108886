"""The review buttons under an alert, and what they become once it is reviewed."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from monitor.models import REVIEW_TRANSITIONS, Review

REVIEW_BUTTONS = (("Reviewed", "reviewed"), ("Dismiss", "dismissed"), ("Escalate", "escalated"))
REVIEWED_MARK = {"reviewed": "✅ Reviewed", "dismissed": "🗑 Dismissed", "escalated": "⚠️ Escalated"}


def review_buttons(
    change_id: int, states: tuple[str, ...] = ("reviewed", "dismissed", "escalated")
) -> list[InlineKeyboardButton]:
    """The buttons under an alert; a press is a review recorded against the Telegram user."""
    return [
        InlineKeyboardButton(label, callback_data=f"review:{change_id}:{state}")
        for label, state in REVIEW_BUTTONS
        if state in states
    ]


def alert_buttons(change_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([review_buttons(change_id)])


def reviewed_buttons(review: Review) -> InlineKeyboardMarkup:
    """Under an alert once reviewed from Telegram: who did what, for the rest of the group to see,
    and the reviews still open to it (an escalation is closed later)."""
    who = review.by.removeprefix("telegram:")
    mark = InlineKeyboardButton(
        f"{REVIEWED_MARK[review.state]} by {who}", callback_data=f"review:{review.change_id}:show"
    )
    rows = [[mark]]
    if next_states := REVIEW_TRANSITIONS[review.state]:
        rows.append(review_buttons(review.change_id, next_states))
    return InlineKeyboardMarkup(rows)
