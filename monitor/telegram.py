"""Outbox -> Telegram, with python-telegram-bot: nothing lost, nothing sent twice once accepted.

Rows leave the outbox only when Telegram has accepted the message (marked sent with its
message id right away). Network trouble leaves them pending for the next delivery; a
RetryAfter makes only that chat wait; a message Telegram refuses for its form goes again in a
plainer one (without its buttons, or as plain text), so that it does not hold back the chat.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from telegram import Bot
from telegram.error import (
    TelegramError,
)
from telegram.request import HTTPXRequest

from monitor.logs import redact
from monitor.models import Alert, PartlySent, TelegramSettings
from monitor.render import hk_time
from monitor.store import Store
from monitor.telegram_buttons import alert_buttons
from monitor.telegram_marks import refresh_marks
from monitor.telegram_pace import MAX_RETRY_AFTER_WAIT, RateLimiter
from monitor.telegram_render import alert_html, digest_html
from monitor.telegram_send import (
    ChatMoved,
    ChatUnreachable,
    DeliveryPostponed,
    MessageSender,
    Outgoing,
)

log = logging.getLogger("monitor.telegram")
DEFAULT_API_URL = "https://api.telegram.org/bot"
HOLD_KEY = "retry_after_until:"  # bot_state: a chat's Retry-After, when it is over (UTC)


@dataclass(frozen=True)
class TelegramEnv:
    """What comes from the environment: the secret token, the alert chats, the Bot API URL."""

    token: str = field(repr=False)
    chats: tuple[str, ...]
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TelegramEnv | None:
        token = environ.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            return None
        chats = tuple(c.strip() for c in environ.get("TELEGRAM_CHAT_IDS", "").split(",") if c.strip())
        return cls(token, chats, environ.get("TELEGRAM_API_URL", "").strip() or DEFAULT_API_URL)

    def redact(self, text: str) -> str:
        return redact(text, [self.token], "<token>")


def make_bot(env: TelegramEnv, timeout: float = 20.0) -> Bot:
    request = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout)
    updates = HTTPXRequest(connect_timeout=timeout, read_timeout=timeout + 30)
    return Bot(env.token, base_url=env.api_url, request=request, get_updates_request=updates)


class TelegramSender:
    def __init__(
        self, bot: Bot, store: Store, settings: TelegramSettings, env: TelegramEnv, retries: int = 2
    ):
        self._bot, self._store, self._settings, self._env = bot, store, settings, env
        self._limiter = RateLimiter(settings)
        self._sender = MessageSender(
            bot, store, self._limiter, env.redact, self._hold, self._seconds_left, retries
        )
        self._moved = False  # a group migrated during this delivery: one more pass
        self._holds_restored = False  # the Retry-Afters an earlier process was given (see _hold)
        # Set when the process is stopping (event-loop time), also during a delivery: no message is
        # started after it, no rate limit waited out past it; the rest stays pending for the next start.
        self.deadline: float | None = None

    async def deliver(self) -> int:
        """Send everything pending, chat by chat in parallel; returns the number of rows sent."""
        sent = 0
        for _ in range(2):  # a second pass sends what a migrated group moved to its new id
            chats = self._store.pending_chats()
            if not chats:
                break
            self._restore_holds()
            try:
                await self._bot.initialize()  # idempotent; raises if Telegram cannot be reached
            except TelegramError as exc:  # the outbox shows why its rows wait
                self._store.mark_attempts(chats, self._env.redact(f"{type(exc).__name__}: {exc}"))
                raise
            results = await asyncio.gather(*(self._deliver_chat(c) for c in chats), return_exceptions=True)
            for chat, result in zip(chats, results, strict=True):
                if isinstance(result, BaseException):  # one chat's trouble never cancels the others
                    log.warning(
                        "telegram: %s: delivery failed (%s): alerts stay pending",
                        chat,
                        self._env.redact(repr(result)),
                    )
            sent += sum(r for r in results if isinstance(r, int))
            if not self._moved:
                break
            self._moved = False
        if self._store.stale_marks(limit=1):
            self._restore_holds()
            await self._bot.initialize()
            await refresh_marks(self._bot, self._store, self._limiter, self._hold, self._seconds_left)
        return sent

    async def _deliver_chat(self, chat: str) -> int:
        sent = 0
        for message in self._messages(self._store.pending_alerts(chat)):
            if self._store.stopped(chat):  # /stop answered meanwhile (the bot runs beside deliveries)
                return sent
            wait = self._limiter.delay(chat)
            if self._seconds_left() <= wait:  # stopping: no time for another
                log.info("telegram: %s: stopping; the rest stays pending for the next start", chat)
                return sent
            if wait > MAX_RETRY_AFTER_WAIT:  # a Retry-After not over yet
                log.info("telegram: %s: rate limited for %.0f s more; alerts stay pending", chat, wait)
                return sent
            try:
                message_id, chat, marked = await self._sender.send(chat, message)
            except ChatUnreachable:
                return sent
            except ChatMoved:
                self._moved = True
                return sent
            except DeliveryPostponed as exc:
                log.warning("telegram: %s: %d alerts stay pending: %s", chat, len(message.alerts), exc)
                for alert in message.alerts:
                    self._store.mark_attempt(alert.outbox_id, str(exc))
                return sent
            if not sent:
                self._store.reached(chat)  # a team chat Telegram had refused takes messages again
            # the message whose buttons show the alert's review (see telegram_marks)
            logged = message.alerts[0].logged
            buttons = (logged.id, chat, marked) if marked and logged else None
            self._store.mark_all_sent([alert.outbox_id for alert in message.alerts], message_id, buttons)
            sent += len(message.alerts)
        return sent

    def _messages(self, alerts: list[Alert]) -> list[Outgoing]:
        """The long messages begun before, first; then one message per alert (with review
        buttons), or one digest when a chat has more pending than `digest_after`; the source-health
        notices in one message of their own."""
        resumed = [self._resumed(partly, alerts) for partly in self._store.partly_sent(alerts)]
        carried = {alert.outbox_id for message in resumed for alert in message.alerts}
        alerts = [a for a in alerts if a.outbox_id not in carried]
        changes = [a for a in alerts if a.logged]
        # One message for the notices pending together: a regulator's site down is every one of its
        # sources failing, and a message each would bury the chat.
        pending_notices = [a for a in alerts if not a.logged]
        text = "\n".join(html.escape(a.notice) for a in pending_notices)
        notices = [Outgoing(pending_notices, f"<b>Source health</b>\n{text}")] if pending_notices else []
        if len(changes) > self._settings.digest_after:
            digest = digest_html([a.logged for a in changes if a.logged])
            delayed = [a.logged.detected_at for a in changes if a.logged and self._delayed(a)]
            if delayed:
                digest += f"\n<i>Delayed: detected from {html.escape(hk_time(min(delayed)))}</i>"
            return [*resumed, Outgoing(changes, digest), *notices]
        singles = [
            Outgoing([a], alert_html(a.logged, delayed=self._delayed(a)), alert_buttons(a.logged.id))
            for a in changes
            if a.logged
        ]
        return [*resumed, *singles, *notices]

    @staticmethod
    def _resumed(partly: PartlySent, pending: list[Alert]) -> Outgoing:
        alerts = [a for a in pending if a.outbox_id in partly.outbox_ids]
        single = alerts[0].logged if len(partly.outbox_ids) == 1 else None  # a digest has no buttons
        buttons = alert_buttons(single.id) if single else None
        return Outgoing(alerts, partly.text, buttons, partly.parts_sent, partly.message_id)

    def _delayed(self, alert: Alert) -> bool:
        queued = datetime.fromisoformat(alert.created_at)
        return datetime.now(UTC) - queued > timedelta(seconds=self._settings.delayed_after)

    def _seconds_left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline - asyncio.get_running_loop().time()

    def _hold(self, chat: str, seconds: float) -> None:
        """Telegram's Retry-After for a chat, kept in the store too: the next `run --once` under
        cron, a new process, must not hit the chat's flood limit again before it is over."""
        self._limiter.hold(chat, seconds)
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        self._store.set_bot_value(HOLD_KEY + chat, until.isoformat(timespec="seconds"))

    def _restore_holds(self) -> None:
        if self._holds_restored:
            return
        self._holds_restored = True
        now = datetime.now(UTC)
        for key, until in self._store.bot_values(HOLD_KEY).items():
            seconds = (datetime.fromisoformat(until) - now).total_seconds()
            if seconds > 0:
                self._limiter.hold(key.removeprefix(HOLD_KEY), seconds)
            else:
                self._store.forget_bot_value(key)


# A send that timed out after Telegram accepted it is sent again at the next delivery, so it can
# arrive twice. That is the price of never dropping one; it is rare.
__all__ = ["TelegramEnv", "TelegramSender", "make_bot"]
