"""Keeping the review buttons of alerts already sent up to date: a review made in one chat, or with
`policy-monitor review`, shows under the alert in every chat it went to (`✅ Reviewed by @amy`),
so that no one takes an alert someone already took."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from monitor.store import Store
from monitor.telegram_buttons import reviewed_buttons
from monitor.telegram_pace import MAX_RETRY_AFTER_WAIT, RateLimiter, retry_after_seconds

log = logging.getLogger("monitor.telegram")
REFRESH_SECONDS = 10.0  # of a delivery at most (a group's pace is ~3 s a message): the rest at the next


async def refresh_marks(
    bot: Bot,
    store: Store,
    limiter: RateLimiter,
    hold: Callable[[str, float], None],
    seconds_left: Callable[[], float],
) -> int:
    """Edit the buttons of each alert whose change was reviewed since they were drawn; returns how
    many. A chat Telegram holds back (429) waits for the next delivery, and so does everything when
    Telegram cannot be reached."""
    edited, budget = 0, asyncio.get_running_loop().time() + REFRESH_SECONDS
    for chat, message_id, review_id, review in store.stale_marks():
        wait = limiter.delay(chat)
        if wait > MAX_RETRY_AFTER_WAIT or seconds_left() <= wait:  # held back, or stopping
            continue
        if asyncio.get_running_loop().time() + wait > budget:  # the next alerts must not wait on this
            break
        await limiter.wait(chat)
        try:
            await bot.edit_message_reply_markup(
                chat_id=chat, message_id=int(message_id), reply_markup=reviewed_buttons(review)
            )
        except RetryAfter as exc:
            hold(chat, retry_after_seconds(exc))
            continue
        except TelegramError as exc:
            if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
                return edited  # Telegram unreachable: the next delivery tries again
            # not modified, deleted, the bot left, the group became a supergroup: as good as shown
            if "not modified" not in str(exc).lower():
                log.info("telegram: %s: the buttons of message %s not updated: %s", chat, message_id, exc)
        else:
            edited += 1
        store.mark_shown(chat, message_id, review_id)
    return edited
