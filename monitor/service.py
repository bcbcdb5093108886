"""The long-running `policy-monitor run`: each source on its schedule, the bot's commands and the
delivery of alerts in one process, and a clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import random

from monitor.channel import Channel
from monitor.commands import (
    FLUSH_SECONDS,
    IDLE_CHECK_SECONDS,
    STOP_WAIT_SECONDS,
    drain,
    now_utc,
    round_of,
    stop_on_signals,
    summary,
    until_done_or,
)
from monitor.fetch import HostSlots
from monitor.models import Config, Source
from monitor.schedule import Scheduler
from monitor.store import Store, utc_now

log = logging.getLogger("monitor")


async def run_forever(
    config: Config, store: Store, channel: Channel, everything: bool = False, rng: random.Random | None = None
) -> None:
    """Each source on its own schedule (see monitor.schedule); meanwhile answer bot commands and
    send alerts as rounds store them. Returns after SIGTERM or SIGINT, having stopped cleanly.
    `everything`: every source is due at start (spread as a catch-up), not only the overdue ones."""
    with stop_on_signals() as stop:
        health = {} if everything else store.health()
        scheduler = Scheduler(config.sources, config.settings, health, now_utc(), rng or random.Random())
        store.mark_started(utc_now())
        outbox, closing = asyncio.Event(), asyncio.Event()
        outbox.set()  # alerts a previous run left pending go first
        sender = asyncio.create_task(_deliver_loop(store, channel, outbox, closing))
        helpers = {sender}
        if channel.commands:
            helpers.add(asyncio.create_task(_command_loop(channel)))
        polls: set[asyncio.Task] = set()
        host_slots: HostSlots = {}
        try:
            while not stop.is_set():
                for source in scheduler.take(now_utc()):
                    polls.add(
                        asyncio.create_task(
                            _poll(config, store, channel, source, scheduler, outbox, host_slots)
                        )
                    )
                wait = scheduler.seconds_to_next(now_utc())
                # capped: the plans are wall-clock times, and the wall clock can jump meanwhile
                await until_done_or(
                    stop,
                    polls | helpers,
                    IDLE_CHECK_SECONDS if wait is None else min(wait, IDLE_CHECK_SECONDS),
                )
                _raise_failures(polls, helpers)
        finally:
            await _shut_down(store, channel, polls, helpers - {sender}, sender, closing)


async def _poll(
    config: Config, store: Store, channel: Channel, source: Source, scheduler: Scheduler, outbox, host_slots
) -> None:
    """A round of one source (each on its own, so a slow one holds no other back), then plan its
    next start and wake the sender. `host_slots`: shared by every round, so that `per_host` caps
    the requests to a host whichever sources' rounds they belong to."""
    try:
        result = await round_of(config, store, [source], channel, host_slots)
    finally:
        scheduler.finished(source.id, store.health().get(source.id), now_utc())
    store.record_round(utc_now(), summary(result))
    outbox.set()


async def _deliver_loop(
    store: Store, channel: Channel, outbox: asyncio.Event, closing: asyncio.Event
) -> None:
    """The only sender in the long-running run, so no alert goes out twice: after each round,
    at least every IDLE_CHECK_SECONDS (a retry of what is pending), and once more when closing."""
    while True:
        await until_done_or(closing, set(), IDLE_CHECK_SECONDS, also=outbox)
        final = closing.is_set()
        outbox.clear()
        await channel.deliver(store)
        if final:
            return


async def _command_loop(channel: Channel) -> None:
    from telegram.error import TelegramError  # only with a bot: see open_channel

    pause = 0.0  # after a failure: 5 s, doubling to a minute, so an outage is a line a minute
    while True:
        try:
            await channel.commands.poll(timeout=25)
            pause = 0.0
        except TelegramError as exc:
            pause = min(60.0, pause * 2 or 5.0)
            log.warning("telegram: reading commands failed (%s); again in %.0f s", type(exc).__name__, pause)
            await asyncio.sleep(pause)


async def _shut_down(
    store: Store, channel: Channel, polls: set, helpers: set, sender: asyncio.Task, closing: asyncio.Event
) -> None:
    """No new work; running sources get STOP_WAIT_SECONDS, then pending alerts FLUSH_SECONDS."""
    for helper in helpers:  # the command poll: a cancelled getUpdates is simply asked again next time
        helper.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    running = len(polls)
    cancelled = await drain(polls, STOP_WAIT_SECONDS)
    for task in polls:  # a round that failed meanwhile: said here, else only at garbage collection
        if task.done() and not task.cancelled() and (error := task.exception()) is not None:
            log.error("a round failed while stopping: %s: %s", type(error).__name__, error)
    if running:
        log.info(
            "stopping: %d of %d running sources finished, %d cancelled",
            running - cancelled,
            running,
            cancelled,
        )
    channel.stop_by(asyncio.get_running_loop().time() + FLUSH_SECONDS)  # also a delivery under way
    closing.set()
    if await drain({sender}, FLUSH_SECONDS + 2):
        log.warning("stopped while sending: the alert being sent may arrive twice")
    if sender.done() and not sender.cancelled():
        sender.exception()  # retrieved: a failure that stopped the run is raised by the loop
    log.info("stopped")


def _raise_failures(polls: set[asyncio.Task], helpers: set[asyncio.Task]) -> None:
    """Forget finished rounds; a round or helper that failed (the database, a refused token)
    stops the run with its error."""
    failure = None
    for task in [t for t in polls if t.done()]:
        polls.discard(task)
        # every failure retrieved (else asyncio logs each as "never retrieved"), the first raised
        if not task.cancelled() and (error := task.exception()) and failure is None:
            failure = error
    if failure is not None:
        raise failure
    for task in helpers:
        if task.done() and not task.cancelled():
            raise task.exception() or RuntimeError("a helper of the run stopped")
