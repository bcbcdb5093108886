"""What the `run`, `bot` and `check` commands do: rounds, then delivery of what they queued."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from telegram.error import InvalidToken, TelegramError

from monitor.errors import SourceError, UnknownSource, UsageError
from monitor.exit_codes import EXIT_OK, EXIT_SOURCES_FAILED
from monitor.extract import extract
from monitor.fetch import Fetcher, open_client
from monitor.models import Config, Snapshot, Source
from monitor.notify import CONSOLE, deliver_console, print_alert
from monitor.render import hk_time
from monitor.run import RoundResult, dry_run_alerts, due_sources, run_round, seconds_until_due
from monitor.store import Recipients, Store

log = logging.getLogger("monitor")
IDLE_CHECK_SECONDS = 60.0


@dataclass
class Channel:
    """Where alerts go: the terminal, or Telegram (sender and command bot) when a token is set."""

    out: TextIO
    telegram: object = None  # monitor.telegram.TelegramSender
    commands: object = None  # monitor.bot.CommandBot

    def recipients(self, store: Store) -> Recipients:
        return store.recipients() if self.telegram else {CONSOLE: None}

    def notice_chats(self, config: Config, store: Store) -> list[str]:
        if not self.telegram:
            return [CONSOLE]
        return [config.telegram.ops_chat] if config.telegram.ops_chat else list(store.recipients())

    async def deliver(self, store: Store) -> int:
        if not self.telegram:
            return deliver_console(store, self.out)
        try:
            return await self.telegram.deliver()
        except InvalidToken:  # 401 or 404: a configuration mistake, not an outage
            raise UsageError(
                "Telegram refused the bot: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL (alerts stay pending)"
            ) from None
        except TelegramError as exc:  # Telegram down: alerts stay in the outbox for the next attempt
            log.warning("telegram unreachable (%s): alerts stay pending", type(exc).__name__)
            return 0


async def _round(config: Config, store: Store, sources: list[Source], channel: Channel) -> RoundResult:
    return await run_round(
        config, store, sources, channel.recipients(store), notice_chats=channel.notice_chats(config, store)
    )


async def run_once(config: Config, store: Store, channel: Channel, everything: bool = False) -> int:
    result = await _round(config, store, _to_poll(config, store, everything), channel)
    await channel.deliver(store)
    return _summarise(result, len(config.sources))


async def run_forever(config: Config, store: Store, channel: Channel) -> None:
    """Each source on its own interval; in between, answer bot commands and retry pending alerts."""
    while True:
        due = due_sources(config.sources, store.health(), _now())
        if due:
            _summarise(await _round(config, store, due, channel), len(config.sources))
        await channel.deliver(store)
        await _idle(_seconds_to_next(config, store), channel)


async def run_bot(store: Store, channel: Channel, once: bool = False) -> None:
    """Answer commands and send pending alerts, without polling any source."""
    while True:
        await channel.deliver(store)
        await _idle(0 if once else IDLE_CHECK_SECONDS, channel, poll_timeout=0 if once else 25)
        if once:
            await channel.deliver(store)
            return


async def _idle(seconds: float, channel: Channel, poll_timeout: int = 25) -> None:
    """Wait `seconds`, answering bot commands meanwhile when there is a bot."""
    if not channel.commands:
        await asyncio.sleep(seconds)
        return
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            await channel.commands.poll(timeout=max(0, min(poll_timeout, int(remaining))))
        except TelegramError as exc:
            log.warning("telegram: reading commands failed (%s)", type(exc).__name__)
            await asyncio.sleep(min(5.0, max(remaining, 0)))
        if time.monotonic() >= deadline:
            return


async def open_channel(
    stack: AsyncExitStack, config: Config, store: Store, out: TextIO, env, with_commands: bool
) -> Channel:
    """The terminal without a token; else Telegram, even if it cannot be reached right now."""
    if env is None:
        return Channel(out)
    from monitor.bot import CommandBot
    from monitor.telegram import TelegramSender, make_bot

    store.sync_env_chats(env.chats)
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


def dry_run(config: Config, db_path: str, out: TextIO, everything: bool = False) -> int:
    """Read the stored state if there is any, write nothing, print what would be alerted."""
    store = Store.open(db_path) if Path(db_path).exists() else Store.open(":memory:")
    try:
        sources = _to_poll(config, store, everything)
        result = asyncio.run(run_round(config, store, sources, {CONSOLE: None}, dry_run=True))
    finally:
        store.close()
    for logged in dry_run_alerts(result, config):
        print_alert(logged, out)
    return _summarise(result, len(config.sources))


def check(config: Config, source_id: str, out: TextIO) -> int:
    source = config.source(source_id)
    if source is None:
        known = ", ".join(s.id for s in config.sources)
        raise UnknownSource(f"no source {source_id!r} in {config.path} (known: {known})")

    async def fetch_and_extract() -> Snapshot:
        async with open_client(config.settings) as client:
            page = await Fetcher(client, config.settings).fetch(source)
        return extract(source, page)

    try:
        snapshot = asyncio.run(fetch_and_extract())
    except SourceError as exc:
        raise SourceError(f"{source_id}: {exc}") from None
    if snapshot.kind == "text":
        out.write(f"{snapshot.title}\n\n{snapshot.text}\n")
    else:
        for item in snapshot.items:
            out.write(f"{hk_time(item.date) or '-':<20} {item.title}\n{'':<20} {item.link}\n")
        out.write(f"\n{len(snapshot.items)} items from {source.url}\n")
    return EXIT_OK


def _to_poll(config: Config, store: Store, everything: bool) -> list[Source]:
    return list(config.sources) if everything else due_sources(config.sources, store.health(), _now())


def _summarise(result: RoundResult, configured: int) -> int:
    failed = result.failed
    polled = len(result.outcomes)
    alerts = sum(o.alerts for o in result.outcomes)
    changes = sum(len(o.changes) for o in result.outcomes)
    log.info(
        "round: %d of %d sources polled, %d failed, %d changes, %d alerts",
        polled, configured, len(failed), changes, alerts,
    )  # fmt: skip
    return EXIT_SOURCES_FAILED if failed else EXIT_OK


def _seconds_to_next(config: Config, store: Store) -> float:
    health, now = store.health(), _now()
    wait = min(seconds_until_due(s, health.get(s.id), now) for s in config.sources)
    return min(max(wait, 1.0), IDLE_CHECK_SECONDS)


def _now() -> datetime:
    return datetime.now(UTC)
