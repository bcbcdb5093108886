"""What the `run`, `bot` and `check` commands do: rounds, then delivery of what they queued; and
the clean stop on SIGTERM or SIGINT that `run` shares with its long-running form (service.py)."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from monitor.channel import Channel
from monitor.dry_run import dry_run_alerts
from monitor.errors import SourceError, UnknownSource
from monitor.exit_codes import EXIT_OK, EXIT_SOURCES_FAILED
from monitor.extract import extract
from monitor.fetch import HostSlots, open_fetcher
from monitor.models import Config, Snapshot, Source
from monitor.normalize import one_line, printable
from monitor.notify import CONSOLE, print_alert
from monitor.render import hk_time
from monitor.run import RoundResult, run_round
from monitor.schedule import due_sources
from monitor.store import Store, utc_now

log = logging.getLogger("monitor")
IDLE_CHECK_SECONDS = 60.0  # pending alerts are retried at least this often
STOP_WAIT_SECONDS = 3.0  # after SIGTERM: how long the running sources may take to finish
FLUSH_SECONDS = (
    3.0  # then: how long pending alerts may start sending (docker stop waits 10 s: 3 + 3 + 2 + teardown)
)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # SIGHUP: the terminal closed


async def round_of(
    config: Config, store: Store, sources: list[Source], channel: Channel, host_slots: HostSlots | None = None
) -> RoundResult:
    return await run_round(
        config,
        store,
        sources,
        channel.recipients(store),
        notice_chats=channel.notice_chats(config, store),
        host_slots=host_slots,
    )


async def run_once(config: Config, store: Store, channel: Channel, everything: bool = False) -> int:
    """One round over the due sources (every source with `everything`), then delivery.

    SIGTERM or SIGINT during the round: the sources still fetching get STOP_WAIT_SECONDS to finish,
    what was stored is sent for FLUSH_SECONDS at most, and the exit is 0 (nothing is lost: unsent
    alerts stay in the outbox, unfinished sources are due at the next start).
    """
    with stop_on_signals() as stop:
        polled = asyncio.create_task(round_of(config, store, _to_poll(config, store, everything), channel))
        await until_done_or(stop, {polled})
        if stop.is_set():
            await drain({polled}, STOP_WAIT_SECONDS)
        result = polled.result() if polled.done() and not polled.cancelled() else None
        if result is not None:
            store.record_round(utc_now(), summary(result))
        await flush(channel, store, stop)
    if result is None:
        return EXIT_OK
    return _summarise(result, len(config.sources))


async def until_done_or(
    stop: asyncio.Event, tasks: set, timeout: float | None = None, also: asyncio.Event | None = None
) -> None:
    """Wait until `stop` (or `also`) is set, one of `tasks` ends, or `timeout` seconds pass."""
    waiters = {asyncio.create_task(event.wait()) for event in (stop, also) if event}
    try:
        await asyncio.wait({*waiters, *tasks}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def drain(tasks: set, seconds: float) -> int:
    """Give `tasks` `seconds` to finish, then cancel the rest; returns how many were cancelled.
    A cancelled round has no transaction open: every write happens between two awaits."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


async def flush(channel: Channel, store: Store, stop: asyncio.Event) -> None:
    """Send what is pending; once `stop` is set (before or during), for FLUSH_SECONDS at most:
    no message starts after that, and a send that hangs is cut off 2 s later."""
    loop = asyncio.get_running_loop()
    limit = asyncio.timeout(None)

    def stopping() -> None:
        channel.stop_by(loop.time() + FLUSH_SECONDS)
        limit.reschedule(loop.time() + FLUSH_SECONDS + 2)

    try:
        async with limit:
            if stop.is_set():
                stopping()
            watcher = loop.create_task(_when_set(stop, stopping))
            try:
                await channel.deliver(store)
            finally:
                watcher.cancel()
    except TimeoutError:
        if not limit.expired():
            raise
        log.warning("stopped while sending: the alert being sent may arrive twice")


async def _when_set(event: asyncio.Event, then) -> None:
    await event.wait()
    then()


@contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """SIGTERM (docker stop, Kubernetes) and SIGINT (Ctrl-C) set the event: stop taking new work."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info("%s: stopping: no new sources; the running ones finish, then pending alerts are sent",
                     signal.Signals(signum).name)  # fmt: skip
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run_bot(store: Store, channel: Channel, once: bool = False) -> None:
    """Answer commands and send pending alerts, without polling any source. SIGTERM or SIGINT
    (docker stop) ends the long poll for commands at once (they are read again at the next start)
    and gives a delivery under way FLUSH_SECONDS; what is left stays pending."""
    with stop_on_signals() as stop:
        while not stop.is_set():
            await flush(channel, store, stop)
            if once:
                await _idle(0, channel, poll_timeout=0)
                await flush(channel, store, stop)
                return
            idle = asyncio.create_task(_idle(IDLE_CHECK_SECONDS, channel))
            await until_done_or(stop, {idle})
            await drain({idle}, STOP_WAIT_SECONDS)  # a command being answered finishes its reply
            if not idle.cancelled():
                idle.result()  # an error of its own ends the bot, as before
    log.info("bot: stopped")


async def _idle(seconds: float, channel: Channel, poll_timeout: int = 25) -> None:
    """Wait `seconds`, answering bot commands meanwhile when there is a bot."""
    if not channel.commands:
        await asyncio.sleep(seconds)
        return
    from telegram.error import TelegramError

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


def dry_run(
    config: Config, db_path: str, out: TextIO, everything: bool = False, json_lines: bool = False
) -> int:
    """Read the stored state if there is any, write nothing, print what would be alerted."""
    known = Path(db_path).exists()
    if not known:  # a mistyped --db, or the wrong folder, would otherwise read as "nothing to alert"
        log.warning(
            "dry run: no state database at %s: every source is new to it, and a first round only "
            "records a baseline, so it shows no alert",
            db_path,
        )
    store = Store.open(db_path) if known else Store.open(":memory:")
    try:
        sources = _to_poll(config, store, everything)
        result = asyncio.run(run_round(config, store, sources, {CONSOLE: None}, dry_run=True))
    finally:
        store.close()
    for logged in dry_run_alerts(result, config):
        print_alert(logged, out, json_lines, dry_run=True)
    return _summarise(result, len(config.sources), "dry run (nothing stored or sent)")


def check(config: Config, source_id: str, out: TextIO) -> int:
    source = config.source(source_id)
    if source is None:
        known = ", ".join(s.id for s in config.sources)
        raise UnknownSource(f"no source {source_id!r} in {config.path} (known: {known})")

    async def fetch_and_extract() -> Snapshot:
        async with open_fetcher(config.settings) as fetcher:
            page = await fetcher.fetch(source)
        return extract(source, page)

    try:
        snapshot = asyncio.run(fetch_and_extract())
    except SourceError as exc:
        raise SourceError(f"{source_id}: {exc}") from None
    if snapshot.kind == "text":
        out.write(f"{one_line(snapshot.title)}\n\n{printable(snapshot.text)}\n")
    else:
        for item in snapshot.items:
            out.write(
                f"{hk_time(item.date) or '-':<20} {one_line(item.title)}\n{'':<20} {one_line(item.link)}\n"
            )
        out.write(f"\n{len(snapshot.items)} items from {source.url}\n")
    return EXIT_OK


def _to_poll(config: Config, store: Store, everything: bool) -> list[Source]:
    return list(config.sources) if everything else due_sources(config.sources, store.health(), now_utc())


def _summarise(result: RoundResult, configured: int, what: str = "round") -> int:
    failed = result.failed
    polled = len(result.outcomes)
    alerts = sum(o.alerts for o in result.outcomes)
    changes = sum(len(o.changes) for o in result.outcomes)
    log.info(
        "%s: %d of %d sources polled, %d failed, %d changes, %d alerts",
        what, polled, configured, len(failed), changes, alerts,
    )  # fmt: skip
    return EXIT_SOURCES_FAILED if failed else EXIT_OK


def summary(result: RoundResult) -> dict[str, int]:
    return {
        "polled": len(result.outcomes),
        "failed": len(result.failed),
        "changes": sum(len(o.changes) for o in result.outcomes),
        "alerts": sum(o.alerts for o in result.outcomes),
    }


def now_utc() -> datetime:
    return datetime.now(UTC)
