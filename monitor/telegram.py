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

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from monitor.logs import redact
from monitor.models import Alert, PartlySent, TelegramSettings
from monitor.render import hk_time
from monitor.store import Store
from monitor.telegram_buttons import alert_buttons
from monitor.telegram_marks import refresh_marks
from monitor.telegram_pace import MAX_RETRY_AFTER_WAIT, RateLimiter, retry_after_seconds
from monitor.telegram_render import alert_html, digest_html, plain_text, split_message, split_plain

log = logging.getLogger("monitor.telegram")
DEFAULT_API_URL = "https://api.telegram.org/bot"
HOLD_KEY = "retry_after_until:"  # bot_state: a chat's Retry-After, when it is over (UTC)
MAX_RATE_LIMITED = 3  # 429s waited out for one message; then the chat's alerts wait for the next delivery


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


class ChatUnreachable(Exception):
    """The bot was blocked, kicked, or the chat does not exist: the chat is deactivated."""


class ChatMoved(Exception):
    """The group became a supergroup; its alerts were moved to the new id for the next pass."""


@dataclass(frozen=True)
class Outgoing:
    """One message for a chat and the outbox rows it carries."""

    alerts: list[Alert]
    text: str
    buttons: InlineKeyboardMarkup | None = None
    parts_sent: int = 0  # of a long message begun before: these parts reached the chat
    message_id: str = ""  # the first part's, then


class DeliveryPostponed(Exception):
    """Telegram could not be reached (or refused for now): the rows stay pending."""


class FormRejected(Exception):
    """Telegram refused a message's HTML or its buttons: the same content goes again in a plainer
    form, so that one message does not hold back the alerts after it."""

    def __init__(self, message: str, entities: bool):
        super().__init__(message)
        self.entities = entities  # the HTML itself could not be parsed (else: the buttons, maybe)


# 400s about the chat, not the message (Bot API descriptions): in another form it would be
# refused all the same, so the chat's alerts wait for it instead.
CHAT_REFUSALS = (
    "rights", "chat_write_forbidden", "chat_restricted", "admin", "topic_closed", "peer_id_invalid",
    "deactivated", "channel_private",
)  # fmt: skip


def _is_network_error(error: BaseException) -> bool:
    # In PTB, BadRequest and TimedOut are NetworkError subclasses. A timeout is not retried on the
    # spot: Telegram may have accepted the message, so it waits for the next delivery instead.
    return isinstance(error, NetworkError) and not isinstance(error, BadRequest | TimedOut)


class TelegramSender:
    def __init__(
        self, bot: Bot, store: Store, settings: TelegramSettings, env: TelegramEnv, retries: int = 2
    ):
        self._bot, self._store, self._settings, self._env = bot, store, settings, env
        self._limiter = RateLimiter(settings)
        self._retries = retries
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
                message_id, chat, marked = await self._send_parts(chat, message)
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
        buttons), or one digest when a chat has more pending than `digest_after`; source-health
        notices on their own."""
        resumed = [self._resumed(partly, alerts) for partly in self._store.partly_sent(alerts)]
        carried = {alert.outbox_id for message in resumed for alert in message.alerts}
        alerts = [a for a in alerts if a.outbox_id not in carried]
        changes = [a for a in alerts if a.logged]
        notices = [
            Outgoing([a], f"<b>Source health</b>\n{html.escape(a.notice)}") for a in alerts if not a.logged
        ]
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

    async def _send_parts(self, chat: str, message: Outgoing) -> tuple[str, str]:
        """Send one message (in numbered parts if long, the buttons under the last); returns the
        first part's id, the chat id (which changes if the group migrated) and the id of the
        message with the buttons ('' if none). How far a long one
        got is saved after each part: if a later part fails, the next delivery does not send the
        parts the chat has again."""
        ids = [message.message_id] if message.parts_sent else []
        parts = split_message(message.text)
        marked = ""
        for number, part in enumerate(parts, 1):
            if number <= message.parts_sent:
                continue
            sent, chat, marked = await self._send_part(
                chat, part, message.buttons if number == len(parts) else None
            )
            ids.extend(sent)
            if number < len(parts):
                rows = tuple(alert.outbox_id for alert in message.alerts)
                self._store.record_parts_sent(PartlySent(rows, message.text, number, ids[0]))
        return ids[0], chat, marked

    async def _send_part(
        self, chat: str, part: str, buttons: InlineKeyboardMarkup | None
    ) -> tuple[list[str], str, str]:
        """One part as HTML with its buttons. Refused for its form: the same HTML without the
        buttons (its links kept), unless the HTML itself was the trouble; then plain text, split
        to fit, with the buttons if Telegram takes them. Refused in its plainest form too, the
        part stays pending (DeliveryPostponed), as a chat-level refusal does. Returns the ids
        sent, the chat, and the id of the message that carries the buttons ('' if none does)."""
        try:
            message_id, chat = await self._send(chat, part, ParseMode.HTML, buttons)
            return [message_id], chat, message_id if buttons else ""
        except FormRejected as exc:
            log.warning(
                "telegram: %s: refused (%s); sending it again in a plainer form",
                chat,
                self._env.redact(str(exc)),
            )
            html_refused = exc.entities
        if buttons is not None and not html_refused:
            try:
                message_id, chat = await self._send(chat, part, ParseMode.HTML, None)
                return [message_id], chat, ""
            except FormRejected:  # the HTML is refused even alone: plain text, and no buttons
                buttons = None
        ids: list[str] = []
        marked = ""
        pieces = split_plain(plain_text(part))
        for index, plain in enumerate(pieces, 1):
            markup = buttons if index == len(pieces) else None
            try:
                message_id, chat = await self._send(chat, plain, None, markup)
                marked = message_id if markup else marked
            except FormRejected:  # only a message with buttons gets here: without them
                message_id, chat = await self._send(chat, plain, None, None)
            ids.append(message_id)
        return ids, chat, marked

    async def _send(
        self, chat: str, text: str, parse_mode: str | None, buttons: InlineKeyboardMarkup | None = None
    ) -> tuple[str, str]:
        for attempt in range(1, MAX_RATE_LIMITED + 2):
            await self._limiter.wait(chat)
            try:
                message = await self._send_with_retries(chat, text, parse_mode, buttons)
                return str(message.message_id), chat
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc)
                self._hold(chat, seconds)  # remembered: this chat's next delivery waits too
                # do not hold up rounds and commands for long, nor a stop past its deadline; and a
                # chat that answers 429 again and again waits for the next delivery
                if seconds > min(MAX_RETRY_AFTER_WAIT, self._seconds_left()) or attempt > MAX_RATE_LIMITED:
                    raise DeliveryPostponed(f"rate limited for {seconds:.0f} s") from None
                log.info("telegram: %s: rate limited, waiting %.0f s", chat, seconds)
            except ChatMigrated as exc:
                new_chat = str(exc.new_chat_id)
                log.warning("telegram: chat %s moved to %s; following it", chat, new_chat)
                self._store.migrate_chat(chat, new_chat)  # its pending rows now wait under the new id
                raise ChatMoved(new_chat) from None
            except Forbidden as exc:
                self._unreachable(chat, exc)
            except BadRequest as exc:
                reason = str(exc).lower()
                entities = "parse entities" in reason or "can't find end" in reason  # quotes the text
                if not entities and "chat not found" in reason:
                    self._unreachable(chat, exc)
                # Unparseable HTML, or buttons Telegram will not take: this message's form, which
                # a retry would hit again and again, holding back every later alert to the chat.
                if (parse_mode or buttons) and (entities or not any(w in reason for w in CHAT_REFUSALS)):
                    raise FormRejected(str(exc), entities) from None
                raise DeliveryPostponed(self._env.redact(str(exc))) from None
            except NetworkError as exc:
                raise DeliveryPostponed(self._env.redact(f"{type(exc).__name__}: {exc}")) from None
        raise AssertionError("unreachable: the last rate-limited attempt raises")

    async def _send_with_retries(
        self, chat: str, text: str, parse_mode: str | None, buttons: InlineKeyboardMarkup | None
    ):
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=0.5, max=10),
            retry=retry_if_exception(_is_network_error),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._bot.send_message(
                    chat_id=chat,
                    text=text,
                    parse_mode=parse_mode,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                    reply_markup=buttons,
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

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

    def _unreachable(self, chat: str, exc: Exception) -> None:
        reason = self._env.redact(str(exc))
        log.warning(
            "telegram: chat %s cannot receive alerts (%s); its alerts wait. A chat of "
            "TELEGRAM_CHAT_IDS is still queued for and tried again within the hour, at /start there and "
            "at the next start; another chat gets nothing more until /start there",
            chat,
            reason,
        )
        self._store.mark_unreachable(chat, reason)
        raise ChatUnreachable(reason) from None


# A send that timed out after Telegram accepted it is sent again at the next delivery, so it can
# arrive twice. That is the price of never dropping one; it is rare.
__all__ = ["TelegramEnv", "TelegramSender", "make_bot"]
