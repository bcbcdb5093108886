"""What the `run` and `check` commands do: a round, then delivery of what it queued."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from monitor.errors import MonitorError
from monitor.extract import extract
from monitor.fetch import Fetcher, open_client
from monitor.models import Config, Snapshot, Source
from monitor.notify import CONSOLE, deliver_console, print_alert
from monitor.render import hk_time
from monitor.run import RoundResult, dry_run_alerts, due_sources, run_round
from monitor.store import Store

log = logging.getLogger("monitor")
EXIT_OK, EXIT_SOURCES_FAILED = 0, 1
IDLE_CHECK_SECONDS = 60.0


def chats() -> list[str]:
    return [CONSOLE]


def run_once(config: Config, store: Store, out: TextIO, everything: bool = False) -> int:
    sources = _to_poll(config, store, everything)
    result = asyncio.run(run_round(config, store, sources, chats()))
    deliver_console(store, out)
    return _summarise(result, len(config.sources))


async def run_forever(config: Config, store: Store, out: TextIO) -> None:
    """Each source on its own interval; in between, sleep until the next one is due."""
    while True:
        due = due_sources(config.sources, store.health(), _now())
        if due:
            result = await run_round(config, store, due, chats())
            deliver_console(store, out)
            _summarise(result, len(config.sources))
        await asyncio.sleep(_seconds_to_next(config, store))


def dry_run(config: Config, db_path: str, out: TextIO, everything: bool = False) -> int:
    """Read the stored state if there is any, write nothing, print what would be alerted."""
    store = Store.open(db_path) if Path(db_path).exists() else Store.open(":memory:")
    try:
        sources = _to_poll(config, store, everything)
        result = asyncio.run(run_round(config, store, sources, chats(), dry_run=True))
    finally:
        store.close()
    for logged in dry_run_alerts(result, config):
        print_alert(logged, out)
    return _summarise(result, len(config.sources))


def check(config: Config, source_id: str, out: TextIO) -> int:
    source = config.source(source_id)
    if source is None:
        known = ", ".join(s.id for s in config.sources)
        raise MonitorError(f"no source {source_id!r} in {config.path} (known: {known})")

    async def fetch_and_extract() -> Snapshot:
        async with open_client(config.settings) as client:
            page = await Fetcher(client, config.settings).fetch(source)
        return extract(source, page)

    snapshot = asyncio.run(fetch_and_extract())
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
    for outcome in failed:
        log.error("source %s failed: %s", outcome.source_id, outcome.error)
    return EXIT_SOURCES_FAILED if failed else EXIT_OK


def _seconds_to_next(config: Config, store: Store) -> float:
    health = store.health()
    now = _now()
    waits = []
    for source in config.sources:
        last = health.get(source.id)
        if last and last.last_attempt_at:
            elapsed = (now - datetime.fromisoformat(last.last_attempt_at)).total_seconds()
            waits.append(source.interval - elapsed)
    return min(max(min(waits, default=1.0), 1.0), IDLE_CHECK_SECONDS)


def _now() -> datetime:
    return datetime.now(UTC)
