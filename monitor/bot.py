"""The bot people talk to: /start /stop /topics /subscribe /unsubscribe /recent /status /help
(answered in bot_answers.py), and the review buttons under alerts.

Commands arrive by long polling (getUpdates); the update offset is kept in SQLite, saved before
each command is answered, so a restart never repeats a command (a crash mid-reply loses that one
reply). Replies are immediate, at most REPLY_LIMIT a minute per chat; alerts go through the outbox.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    Chat,
    ChatMember,
    LinkPreviewOptions,
    MaybeInaccessibleMessage,
    Message,
    Update,
    User,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from monitor.bot_answers import COMMANDS, TEAM_ONLY, Answers, command_of
from monitor.errors import MonitorError, UnknownChange
from monitor.models import Config, Review
from monitor.store import Store
from monitor.telegram_buttons import reviewed_buttons
from monitor.telegram_pace import ReplyBudget, retry_after_seconds
from monitor.telegram_render import split_message

log = logging.getLogger("monitor.bot")
OFFSET_KEY = "telegram_update_offset"
REPLY_LIMIT, REPLY_WINDOW = 10, 60.0  # commands a chat gets answered in a minute; then one notice
CHANGES_WHAT_A_CHAT_GETS = TEAM_ONLY - {"status"}
GROUP_ADMINS_ONLY = (
    "In this group, only its admins can change what it receives ([telegram] group_admins_only)."
)
TOO_MANY = "Too many commands from this chat: the next ones get no answer for a minute."


class CommandBot:
    def __init__(self, bot: Bot, store: Store, config: Config, clock: Callable[[], float] = time.monotonic):
        self._bot, self._store, self._config = bot, store, config
        self._registered = False
        self._answers = Answers(store, config)
        self._replies = ReplyBudget(REPLY_LIMIT + 1, REPLY_WINDOW, clock)  # + 1: the notice

    async def register(self) -> None:
        await self._bot.delete_webhook()  # long polling and a webhook exclude each other
        await self._bot.set_my_commands([BotCommand(name, text) for name, text in COMMANDS])
        self._registered = True

    async def poll(self, timeout: int = 25) -> int:
        """One getUpdates call; answers each command. Returns how many updates were handled."""
        if not self._registered:  # Telegram was unreachable at start: the command menu comes now
            try:
                await self.register()
            except (BadRequest, Forbidden) as exc:  # refused, not unreachable: commands work without it
                log.warning("telegram: the command menu was refused (%s); commands are still answered", exc)
                self._registered = True
        offset = int(self._store.bot_value(OFFSET_KEY, "0")) or None
        updates = await self._bot.get_updates(
            offset=offset, timeout=timeout, allowed_updates=["message", "callback_query"]
        )
        for update in updates:
            self._store.set_bot_value(OFFSET_KEY, str(update.update_id + 1))
            try:
                await self._handle(update)
            except (BadRequest, Forbidden) as exc:  # this answer refused (a stale button, a blocked bot)
                log.info("telegram: update %d: the answer was refused: %s", update.update_id, exc)
            except TelegramError:  # Telegram unreachable: the caller waits and asks again
                raise
            except Exception as exc:  # what anyone can send must never stop the run that alerts
                log.warning(
                    "telegram: update %d not handled: %s: %s", update.update_id, type(exc).__name__, exc
                )
                log.debug("telegram: update %d", update.update_id, exc_info=True)
        return len(updates)

    async def _handle(self, update: Update) -> None:
        query = update.callback_query
        message = query.message if query else update.effective_message
        if not query and (self._followed_migration(message) or not self._is_command_for_me(message)):
            return
        # A button's answer is budgeted with its chat's commands: in a channel anyone can press them.
        chat = str(message.chat.id) if message else f"user {query.from_user.id}"
        left = self._replies.left(chat)
        if left <= 0:  # neither answered nor acted on
            return
        self._replies.spend(chat)
        if left == 1:
            log.info(
                "telegram: chat %s sent over %d commands in a minute: not answered for now", chat, REPLY_LIMIT
            )
            self._replies.hold(chat, REPLY_WINDOW)  # the notice is the last reply for a minute
        try:
            if query:
                answer, review = (TOO_MANY, None) if left == 1 else self._review_from_button(query)
                await self._bot.answer_callback_query(query.id, text=answer)
                if review and query.message:
                    await self._show_review(query.message, review)
            else:
                await self._reply(message, TOO_MANY if left == 1 else await self._answer_message(message))
        except RetryAfter as exc:  # this chat's flood limit: the other chats' commands go on
            seconds = retry_after_seconds(exc)
            self._replies.hold(chat, seconds)
            log.info("telegram: replies to chat %s paused for %.0f s at Telegram's request", chat, seconds)

    def _followed_migration(self, message: Message | None) -> bool:
        """Telegram's notice that a group became a supergroup, in the old one or the new one: a
        stopped group is never sent to, so no failed send would tell of its new id."""
        if message is None or not (message.migrate_to_chat_id or message.migrate_from_chat_id):
            return False
        old, new = (
            (message.chat.id, message.migrate_to_chat_id)
            if message.migrate_to_chat_id
            else (message.migrate_from_chat_id, message.chat.id)
        )
        self._store.migrate_chat(str(old), str(new))
        return True

    def _is_command_for_me(self, message: Message | None) -> bool:
        """A /command, and not one for another bot (`/recent@otherbot`, in a group with several)."""
        if message is None or not message.text or not message.text.startswith("/"):
            return False
        _, addressee = command_of(message.text)
        if not addressee:
            return True
        try:
            mine = self._bot.username
        except RuntimeError:  # not initialized (Telegram was unreachable at start): cannot tell
            return True
        return addressee.lower() == mine.lower()

    async def _answer_message(self, message: Message) -> str:
        trusted = self.trusted(message.chat, message.from_user)
        user_id = message.from_user.id if message.from_user else None
        if trusted and await self._not_a_group_admin(message, user_id):
            return GROUP_ADMINS_ONLY
        return self._answers.answer(str(message.chat_id), message.text, trusted, user_id)

    async def _not_a_group_admin(self, message: Message, user_id: int | None) -> bool:
        """With [telegram] group_admins_only: a command that changes what a group receives, from a
        member who is neither one of its Telegram admins nor of [telegram] admins."""
        if (
            not self._config.telegram.group_admins_only
            or command_of(message.text)[0] not in CHANGES_WHAT_A_CHAT_GETS
            or message.chat.type not in (Chat.GROUP, Chat.SUPERGROUP)
            or user_id in self._config.telegram.admins
        ):
            return False
        if message.sender_chat and message.sender_chat.id == message.chat.id:
            return False  # sent as the group itself: only its admins can (an anonymous admin)
        if user_id is None:
            return True
        try:
            member = await self._bot.get_chat_member(message.chat.id, user_id)
        except RetryAfter:
            raise
        except TelegramError as exc:  # not known to be an admin: refused, and they may ask again
            log.info(
                "telegram: could not check user %d is an admin of chat %d: %s", user_id, message.chat.id, exc
            )
            return True
        return member.status not in (ChatMember.ADMINISTRATOR, ChatMember.OWNER)

    async def _reply(self, message: Message, reply: str) -> None:
        for part in split_message(reply):
            await self._bot.send_message(
                chat_id=message.chat_id,
                text=part,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )

    def _review_from_button(self, query: CallbackQuery) -> tuple[str, Review | None]:
        """The answer to a button under an alert, and the review it recorded (None if none)."""
        kind, _, rest = (query.data or "").partition(":")
        change_id, _, state = rest.partition(":")
        chat = query.message.chat if query.message else None
        if kind != "review" or not (change_id.isascii() and change_id.isdigit()) or chat is None:
            return "Unknown button.", None
        user = query.from_user
        if not self.trusted(chat, user):  # reviews are the team's: its configured chats and admins
            return "Only the team's chats (TELEGRAM_CHAT_IDS) and [telegram] admins can review alerts.", None
        if chat.type == Chat.CHANNEL and user.id not in self._config.telegram.admins:
            # a channel's every reader can press the buttons under its posts
            return "In a channel, only [telegram] admins can review alerts.", None
        by = f"telegram:@{user.username}" if user.username else f"telegram:{user.id}"
        try:
            if state == "show":  # the mark of a review already made
                return f"Change {int(change_id)} is {self._store.change(int(change_id)).state}.", None
            review = self._store.add_review(int(change_id), state, by)
        except UnknownChange:
            return f"No change {int(change_id)} in the change log.", None
        except MonitorError as exc:
            return str(exc)[:190], None  # Telegram shows at most 200 characters
        return f"Change {int(change_id)} marked {state}.", review

    async def _show_review(self, message: MaybeInaccessibleMessage, review: Review) -> None:
        """The alert's buttons become who reviewed it, so that the rest of a group need not."""
        try:
            await self._bot.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=message.message_id, reply_markup=reviewed_buttons(review)
            )
        except BadRequest as exc:  # too old to edit (48 h), or deleted: the review stands
            log.info("telegram: the buttons of message %d not updated: %s", message.message_id, exc)
        # this message shows it now; the alert's copies in other chats, at the next delivery
        self._store.mark_shown(str(message.chat.id), str(message.message_id))

    def trusted(self, chat: Chat | None, user: User | None) -> bool:
        """A chat of TELEGRAM_CHAT_IDS by its numeric id, or a user of [telegram] admins. An @name
        in the list is where alerts go (a channel, which sends no commands), never who is the team:
        a freed name can be taken by anyone, for a private chat or a group."""
        if user is not None and user.id in self._config.telegram.admins:
            return True
        return chat is not None and str(chat.id) in self._store.env_chats()
