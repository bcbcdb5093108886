"""Where alerts go: the terminal without a token; else Telegram (the sender, and the command
bot where commands are answered), even when Telegram cannot be reached right now."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TextIO

from monitor.errors import UsageError
from monitor.models import Config
from monitor.notify import CONSOLE, deliver_console
from monitor.store import Recipients, Store

log = logging.getLogger("monitor")


@dataclass
class Channel:
    """Where alerts go: the terminal, or Telegram (sender and command bot) when a token is set."""

    out: TextIO
    telegram: object = None  # monitor.telegram.TelegramSender
    commands: object = None  # monitor.bot.CommandBot
    json_lines: bool = False  # the terminal's alerts as JSON lines (--log-format json)

    def recipients(self, store: Store) -> Recipients:
        if not self.telegram:
            return {CONSOLE: None}
        chats = store.recipients()
        if not chats:  # the round's alerts reach no one: say so every round, not once at start
            log.warning(
                "telegram: no chat receives alerts (TELEGRAM_CHAT_IDS is empty and no chat has "
                "subscribed with /start, or every chat was deactivated): changes go to the change log only"
            )
        return chats

    def notice_chats(self, config: Config, store: Store) -> list[str]:
        if not self.telegram:
            return [CONSOLE]
        if config.telegram.ops_chat:  # a group that became a supergroup: its new id
            return [store.followed(config.telegram.ops_chat)]
        return list(store.recipients())

    def stop_by(self, deadline: float) -> None:
        """Stopping: no message starts after `deadline` (event-loop time), even in a delivery under way."""
        if self.telegram:
            self.telegram.deadline = deadline

    async def deliver(self, store: Store) -> int:
        if not self.telegram:
            return deliver_console(store, self.out, self.json_lines)
        from telegram.error import InvalidToken, TelegramError

        try:
            return await self.telegram.deliver()
        except InvalidToken:  # 401 or 404: a configuration mistake, not an outage
            raise UsageError(
                "Telegram refused the bot: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL (alerts stay pending)"
            ) from None
        except TelegramError as exc:  # Telegram down: alerts stay in the outbox for the next attempt
            log.warning("telegram unreachable (%s): alerts stay pending", type(exc).__name__)
            return 0


async def open_channel(
    stack: AsyncExitStack,
    config: Config,
    store: Store,
    out: TextIO,
    env,
    with_commands: bool,
    json_lines: bool = False,
) -> Channel:
    """The terminal without a token; else Telegram, even if it cannot be reached right now."""
    if env is None:
        return Channel(out, json_lines=json_lines)
    # Imported here: python-telegram-bot takes ~0.2 s to import, and a run without a token never needs it.
    from telegram.error import InvalidToken, TelegramError

    from monitor.bot import CommandBot
    from monitor.telegram import TelegramSender, make_bot

    if not env.chats and not config.telegram.admins:
        raise UsageError(  # nobody could ever /start a chat; checked before the chats are touched
            "TELEGRAM_BOT_TOKEN is set but no chat can receive alerts: set TELEGRAM_CHAT_IDS "
            "(comma-separated chat ids or @channel names), or [telegram] admins to subscribe chats with /start"
        )
    for chat in store.sync_env_chats(env.chats):
        log.warning(
            "telegram: chat %s of TELEGRAM_CHAT_IDS asked to stop with /stop: no alerts to it until /start there",
            chat,
        )
    bot = make_bot(env)
    stack.push_async_callback(bot.shutdown)
    commands = CommandBot(bot, store, config) if with_commands else None
    if commands:
        try:
            await bot.initialize()
            await commands.register()
        except InvalidToken:
            raise UsageError(
                "Telegram refused the bot: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL"
            ) from None
        except TelegramError as exc:  # rounds still run; alerts wait in the outbox
            log.warning("telegram unreachable at start (%s): alerts will wait", type(exc).__name__)
    return Channel(out, TelegramSender(bot, store, config.telegram, env), commands)
