"""The pace of sending to Telegram: each chat's own, any two sends apart, and the replies to
commands a chat may get."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from telegram.error import RetryAfter

from monitor.models import TelegramSettings

MAX_RETRY_AFTER_WAIT = 30.0  # seconds; a longer RetryAfter leaves the chat's alerts for the next delivery


class RateLimiter:
    """Telegram's limits: ~1 message/s to a private chat, ~20/min to a group or channel, ~30/s overall.

    Each chat keeps its own pace; the overall limit only keeps any two sends `global_interval`
    apart, so a group's next slot, seconds ahead, does not hold a private chat back till then.
    """

    def __init__(self, settings: TelegramSettings):
        self._settings = settings
        self._next: dict[str, float] = {}
        self._booked: list[float] = []  # send times taken, in order, over the last moments

    def delay(self, chat: str) -> float:
        """How long the next message to `chat` would wait."""
        now = asyncio.get_running_loop().time()
        return self._slot(chat, now) - now

    def hold(self, chat: str, seconds: float) -> None:
        """Telegram asked for `seconds` of quiet to `chat` (a 429's Retry-After)."""
        until = asyncio.get_running_loop().time() + seconds
        self._next[chat] = max(self._next.get(chat, 0.0), until)

    async def wait(self, chat: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = self._slot(chat, now)
        private = chat.isdigit()  # groups have negative ids, channels are @names
        self._next[chat] = start + (
            self._settings.private_interval if private else self._settings.group_interval
        )
        self._booked = sorted([t for t in self._booked if t > now - self._settings.global_interval] + [start])
        await asyncio.sleep(start - now)

    def _slot(self, chat: str, now: float) -> float:
        """The first time at or after the chat's own next slot that no other send is too close to."""
        start, gap = max(now, self._next.get(chat, 0.0)), self._settings.global_interval
        for booked in self._booked:
            if booked - gap < start < booked + gap:
                start = booked + gap
        return start


class ReplyBudget:
    """How many command replies each chat may still get: `limit` in any `window` seconds, and
    none while Telegram asked for quiet to it.

    Replies go out at once, not through the outbox; without a budget a stranger sending hundreds
    of /help would make the bot send hundreds of messages, drawing Telegram's flood limits on the
    bot that also sends the team's alerts.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window = limit, window
        self._clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._quiet_until: dict[str, float] = {}

    def left(self, chat: str) -> int:
        """Replies `chat` may get now: 0 when it used them up or Telegram asked for quiet."""
        now = self._clock()
        if self._quiet_until.get(chat, 0.0) > now:
            return 0
        sent = self._sent.get(chat)
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        return self.limit - len(sent or ())

    def spend(self, chat: str) -> None:
        now = self._clock()
        if len(self._sent) > 1000:  # many chats: forget the ones quiet for a window
            self._sent = {c: s for c, s in self._sent.items() if s and s[-1] > now - self.window}
        self._sent.setdefault(chat, deque()).append(now)

    def hold(self, chat: str, seconds: float) -> None:
        """Telegram answered a reply to `chat` with a 429: nothing more to it for `seconds`."""
        self._quiet_until[chat] = self._clock() + seconds
        if len(self._quiet_until) > 1000:
            now = self._clock()
            self._quiet_until = {c: t for c, t in self._quiet_until.items() if t > now}


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 announces a switch from int to timedelta; both are handled
        warnings.simplefilter("ignore")
        wait = error.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
