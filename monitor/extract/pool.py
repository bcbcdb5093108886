"""Extraction on the machine's other cores, for rounds with many sources.

A round is one event loop: while a listing is parsed (~5 ms for 50 items) no other source's bytes
are read. With a few hundred sources and a second core, the parsing goes to worker processes and
the loop keeps fetching; a small round parses in-process (starting a worker costs ~0.3 s of CPU).
Workers are spawned, not forked (the loop's DNS threads must not be copied), and ignore SIGINT:
Ctrl-C reaches the whole process group, and the parent alone decides how a round stops.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager

from monitor.extract import extract_unless_same
from monitor.models import Page, Snapshot, Source

log = logging.getLogger("monitor.extract")
POOL_MIN_SOURCES = 100  # below this a round parses in-process

Extractor = Callable[[Source, Page, str], Awaitable[Snapshot | None]]


async def extract_here(source: Source, page: Page, known_region: str) -> Snapshot | None:
    return extract_unless_same(source, page, known_region)


@asynccontextmanager
async def extraction(source_count: int) -> AsyncIterator[Extractor]:
    """An `extract_unless_same` to await: in worker processes (one per spare core) when the round
    has at least POOL_MIN_SOURCES sources and the machine a second core, else in-process."""
    spare = usable_cores() - 1
    if source_count < POOL_MIN_SOURCES or spare < 1:
        yield extract_here
        return
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=spare, mp_context=context, initializer=_ignore_sigint)
    loop = asyncio.get_running_loop()
    plural = "es" if spare > 1 else ""
    log.info("round of %d sources: parsing on %d worker process%s", source_count, spare, plural)

    async def extract_there(source: Source, page: Page, known_region: str) -> Snapshot | None:
        try:
            return await loop.run_in_executor(executor, extract_unless_same, source, page, known_region)
        except BrokenProcessPool:  # a worker died (killed, out of memory): parse here, lose nothing
            log.warning("%s: extraction worker gone, parsing in-process", source.id)
            return extract_unless_same(source, page, known_region)

    try:
        yield extract_there
    finally:
        # Joined, not abandoned: the workers exit with the round (idle by now, or cancelled by a stop).
        executor.shutdown(wait=True, cancel_futures=True)


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
