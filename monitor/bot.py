"""The bot people talk to: /start /stop /topics /subscribe /unsubscribe /recent /status /help.

Commands arrive by long polling (getUpdates); the update offset is kept in SQLite, saved before
each command is answered, so a restart never repeats a command (a crash mid-reply loses that one
reply). Replies are immediate, at most REPLY_LIMIT a minute per chat; alerts go through the outbox.
"""

from __future__ import annotations

import html
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

from monitor.errors import MonitorError, UnknownChange
from monitor.models import Config, Review
from monitor.render import hk_time
from monitor.store import Store
from monitor.telegram_buttons import reviewed_buttons
from monitor.telegram_pace import ReplyBudget, retry_after_seconds
from monitor.telegram_render import digest_html, split_message

log = logging.getLogger("monitor.bot")
OFFSET_KEY = "telegram_update_offset"
COMMANDS = (
    ("start", "Subscribe this chat to alerts"),
    ("stop", "Stop alerts to this chat"),
    ("topics", "List the topics and what this chat receives"),
    ("subscribe", "Receive a topic: /subscribe stablecoin"),
    ("unsubscribe", "Stop a topic: /unsubscribe e-hkd"),
    ("recent", "The last alerts for this chat: /recent 5"),
    ("status", "Each source: last success, last error, failures"),
    ("help", "What this bot does"),
)
# Commands that change what the bot sends, or to whom, and /status (its errors can name the
# operator's proxy or hosts): only from a chat of TELEGRAM_CHAT_IDS or a user of [telegram]
# admins. Anyone may ask /help, /topics and /recent (the regulators' public releases).
TEAM_ONLY = frozenset({"start", "stop", "subscribe", "unsubscribe", "status"})
COMMAND_NAMES = frozenset(name for name, _ in COMMANDS)
REPLY_LIMIT, REPLY_WINDOW = 10, 60.0  # commands a chat gets answered in a minute; then one notice
CHANGES_WHAT_A_CHAT_GETS = TEAM_ONLY - {"status"}
NOT_WHILE_STOPPED = frozenset({"topics", "subscribe", "unsubscribe"})  # a topic choice would turn it on
GROUP_ADMINS_ONLY = (
    "In this group, only its admins can change what it receives ([telegram] group_admins_only)."
)
STOPPED_HERE = "Alerts to this chat are stopped (/stop). /start subscribes it again, to every topic."
TOO_MANY = "Too many commands from this chat: the next ones get no answer for a minute."


class CommandBot:
    def __init__(self, bot: Bot, store: Store, config: Config, clock: Callable[[], float] = time.monotonic):
        self._bot, self._store, self._config = bot, store, config
        self._registered = False
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
        _, addressee = _command(message.text)
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
        return self.answer(str(message.chat_id), message.text, trusted, user_id)

    async def _not_a_group_admin(self, message: Message, user_id: int | None) -> bool:
        """With [telegram] group_admins_only: a command that changes what a group receives, from a
        member who is neither one of its Telegram admins nor of [telegram] admins."""
        if (
            not self._config.telegram.group_admins_only
            or _command(message.text)[0] not in CHANGES_WHAT_A_CHAT_GETS
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

    def answer(self, chat: str, text: str, trusted: bool = False, user_id: int | None = None) -> str:
        """The HTML reply to one command from one chat; `trusted`: see `trusted`."""
        words = text.split()
        command, _ = _command(text)
        if command not in COMMAND_NAMES:  # never a lookup by what a stranger typed: /topic is a helper
            return f"Unknown command {html.escape(words[0])}. " + self._help(chat, [])
        if command in TEAM_ONLY and not trusted:
            return _refusal(user_id)
        if command in NOT_WHILE_STOPPED and self._store.stopped(chat):
            return STOPPED_HERE
        try:
            return getattr(self, f"_{command}")(chat, words[1:])
        except MonitorError as exc:
            return html.escape(str(exc)[:300])
        except Exception:  # a bug answering one command must not stop the run that alerts
            log.exception("telegram: answering %s failed", command)
            return "Sorry, that command failed; the operator can see why in the monitor's log."

    def _start(self, chat: str, args: list[str]) -> str:
        self._store.subscribe(chat)
        return (
            "<b>Subscribed.</b> This chat gets an alert within minutes when the SFC, the HKMA or the "
            "FSTB publishes something about: " + ", ".join(self._config.topics) + ".\n"
            "/topics to narrow it down, /recent for the latest alerts, /stop to unsubscribe."
        )

    def _stop(self, chat: str, args: list[str]) -> str:
        self._store.stop_chat(chat)
        return "Alerts to this chat are stopped. /start subscribes again."

    def _topics(self, chat: str, args: list[str]) -> str:
        receiving = self._receiving(chat)
        lines = [f"{'✅' if name in receiving else '▫️'} {html.escape(name)}" for name in self._config.topics]
        return "<b>Topics</b> (✅ = this chat receives it)\n" + "\n".join(lines)

    def _subscribe(self, chat: str, args: list[str]) -> str:
        topics = self._topics_named(args)
        if not topics:
            return self._topic_help("subscribe")
        current = self._store.chat_topics(chat)
        chosen = set(topics) if current is None else set(current) | set(topics)
        self._store.subscribe(chat, frozenset(chosen))
        return f"This chat now receives: {', '.join(sorted(chosen))}. /start receives every topic again."

    def _unsubscribe(self, chat: str, args: list[str]) -> str:
        topics = self._topics_named(args)
        if not topics:
            return self._topic_help("unsubscribe")
        chosen = self._receiving(chat) - set(topics)
        self._store.subscribe(chat, frozenset(chosen))
        left = ", ".join(sorted(chosen)) or "no topic (use /subscribe or /start)"
        return f"This chat now receives: {left}."

    def _recent(self, chat: str, args: list[str]) -> str:
        count = int(args[0]) if args and args[0].isascii() and args[0].isdigit() else 5  # not "²"
        recent = self._store.recent(self._store.chat_topics(chat), max(1, min(count, 20)))
        return digest_html(recent, "latest") if recent else "No alerts yet for this chat's topics."

    def _status(self, chat: str, args: list[str]) -> str:
        health = self._store.health()
        lines = ["<b>Sources</b>"]
        for source in self._config.sources:
            state = health.get(source.id)
            if state is None:
                lines.append(f"▫️ {source.id}: not polled yet")
            elif state.consecutive_failures:
                error = html.escape(state.last_error[:200])
                lines.append(
                    f"⚠️ {source.id}: {state.consecutive_failures} failures in a row; last error: {error}"
                )
            else:
                lines.append(f"✅ {source.id}: last success {hk_time(state.last_success_at)}")
        return "\n".join(lines)

    def _help(self, chat: str, args: list[str]) -> str:
        lines = [f"/{name} – {html.escape(text)}" for name, text in COMMANDS]
        return "<b>hk-policy-monitor</b> watches the SFC, the HKMA and the FSTB.\n" + "\n".join(lines)

    def _receiving(self, chat: str) -> set[str]:
        current = self._store.chat_topics(chat)
        return set(self._config.topics) if current is None else set(current)

    def _topics_named(self, args: list[str]) -> list[str]:
        """The topics named (`/subscribe e-hkd stablecoin`, commas too); none unless every name is one."""
        names = [name.lower() for arg in args for name in arg.split(",") if name]
        return names if names and all(name in self._config.topics for name in names) else []

    def _topic_help(self, command: str) -> str:
        return f"Name one or more topics: /{command} " + " | ".join(self._config.topics)


def _command(text: str) -> tuple[str, str]:
    """("recent", "otherbot") from "/recent@otherbot 5": the command and the bot it is addressed to."""
    name, _, addressee = text.split()[0][1:].partition("@")
    return name.lower(), addressee


def _refusal(user_id: int | None) -> str:
    """A polite no to a stranger, saying what the operator would need to change."""
    who = f" (your user id is {user_id})" if user_id else ""
    return (
        "Sorry, this bot only takes that command from the chats it was set up for. "
        f"Its operator can add you to <code>[telegram] admins</code>{who}. /help lists what anyone can ask."
    )
