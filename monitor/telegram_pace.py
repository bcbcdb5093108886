"""The pace of sending to Telegram: each chat's own, and any two sends apart."""

from __future__ import annotations

import asyncio

from monitor.models import TelegramSettings


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
