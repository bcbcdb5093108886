"""One message to one chat, with python-telegram-bot: its numbered parts, its plainer forms when
Telegram refuses one, and Telegram's answers about the chat (429s waited out, a group that became a
supergroup followed, a chat that cannot receive set aside). TelegramSender (telegram.py) decides
what goes to whom; this sends it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from monitor.models import Alert, PartlySent
from monitor.store import Store
from monitor.telegram_pace import MAX_RETRY_AFTER_WAIT, RateLimiter, retry_after_seconds
from monitor.telegram_render import plain_text, split_message, split_plain

log = logging.getLogger("monitor.telegram")
MAX_RATE_LIMITED = 3  # 429s waited out for one message; then the chat's alerts wait for the next delivery


class ChatUnreachable(Exception):
    """The bot was blocked, kicked, or the chat does not exist: the chat is set aside (see
    OutboxStore.mark_unreachable)."""


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


class MessageSender:
    """Sends one Outgoing message to one chat (see `send`)."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        limiter: RateLimiter,
        redact: Callable[[str], str],
        hold: Callable[[str, float], None],
        seconds_left: Callable[[], float],
        retries: int = 2,
    ):
        self._bot, self._store, self._limiter, self._redact = bot, store, limiter, redact
        self._hold, self._seconds_left, self._retries = hold, seconds_left, retries

    async def send(self, chat: str, message: Outgoing) -> tuple[str, str, str]:
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
                self._redact(str(exc)),
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
                raise DeliveryPostponed(self._redact(str(exc))) from None
            except NetworkError as exc:
                raise DeliveryPostponed(self._redact(f"{type(exc).__name__}: {exc}")) from None
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

    def _unreachable(self, chat: str, exc: Exception) -> None:
        reason = self._redact(str(exc))
        log.warning(
            "telegram: chat %s cannot receive alerts (%s); its alerts wait. A chat of "
            "TELEGRAM_CHAT_IDS is still queued for and tried again within the hour, at /start there and "
            "at the next start; another chat gets nothing more until /start there",
            chat,
            reason,
        )
        self._store.mark_unreachable(chat, reason)
        raise ChatUnreachable(reason) from None
