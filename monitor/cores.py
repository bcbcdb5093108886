"""A big first round on every core: its sources split by site between this process and children.

A round is one event loop. A round of known sources is bound by the network: a page whose raw
bytes (less their tokens) are the last ones is not parsed, and one process polls 1,000 of them as
fast as two. A round of hundreds of new sources parses every page for its baseline and is
CPU-bound, so a second core nearly halves it. The split is by site (`hkma.gov.hk` with
`api.hkma.gov.hk`), never within one, so `per_host` still bounds what any one site sees, detail
pages included. Each child polls its share with its own clients and database connection;
SQLite's write lock orders the two processes' transactions (and the cross-source dedupe inside
them). The parent keeps what only it may do: the process lock, health notices and delivery; and
it writes the children's log records, as they come, through its own logging set-up (text or
JSON lines, the token redacted).

Children are spawned, not forked (the loop's DNS threads must not be copied); they ignore SIGINT
(Ctrl-C reaches the whole process group: the parent decides how a round stops), stop when the
parent's round is cancelled, and are killed by the kernel if the parent dies, so no orphan keeps
writing to a database whose lock was released.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from ipaddress import ip_address
from urllib.parse import urlsplit

from monitor import childlogs
from monitor.models import Config, Health, Source
from monitor.store import Recipients, Store

log = logging.getLogger("monitor.run")
# A child starts polling ~0.2 s after this process (an interpreter, the imports, the config),
# the time this process takes for ~30-50 new sources (~4 ms of CPU each). Measured (2 cores,
# 50 ms per request, ~100 KB listings, 1,000 sources): a first round takes ~4.5 s in one process
# and ~2.9 s split (2026-12-05); a round of known sources is as fast in one process (2026-12-04:
# 2.2 s against 2.4 s with no change, 2.8 s against 2.6 s with 10% changed); memory ~65 MB a
# process.
CHILD_START = 30
SPLIT_MIN_SOURCES = 300  # new sources (no stored snapshot) in the round
PR_SET_PDEATHSIG = 1
SECOND_LEVEL = {"com", "edu", "gov", "net", "org", "co", "ac"}  # hkma.gov.hk is a site, gov.hk is not

Poll = Callable[[Sequence[Source]], Awaitable[list]]


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def site_of(url: str) -> str:
    """The site a URL belongs to: its registrable domain (`www.sfc.hk` and `apps.sfc.hk` are one),
    or the address itself."""
    host = (urlsplit(url).hostname or "").lower()
    try:
        ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.split(".")
    keep = 3 if len(labels) >= 3 and labels[-2] in SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def split_by_site(
    sources: Sequence[Source], parts: int, child_start: int | None = None
) -> list[list[Source]]:
    """At most `parts` groups of whole sites, each in the config's order; the first is this
    process's. Sites go, biggest first, to the group with the least work, a child's counting
    `child_start` (CHILD_START) extra sources: it starts that much later, and the round waits for the last."""
    by_site: dict[str, list[Source]] = {}
    for source in sources:
        by_site.setdefault(site_of(source.url), []).append(source)
    count = min(parts, len(by_site))
    groups: list[list[Source]] = [[] for _ in range(count)]
    load = [0] + [CHILD_START if child_start is None else child_start] * (count - 1)
    for site in sorted(by_site, key=lambda s: (-len(by_site[s]), s)):
        least = load.index(min(load))
        groups[least].extend(by_site[site])
        load[least] += len(by_site[site])
    order = {source.id: n for n, source in enumerate(sources)}
    return [sorted(group, key=lambda s: order[s.id]) for group in groups if group]


async def poll_on_every_core(
    config: Config,
    store: Store,
    sources: Sequence[Source],
    recipients: Recipients,
    health: dict[str, Health],
    poll_here: Poll,
) -> list:
    """`poll_here(sources)`, with the share of other sites polled by children when the round has
    SPLIT_MIN_SOURCES new sources or more and the machine has the cores (or `[settings] processes`
    asks for them; 1: never). Outcomes come back in the order of `sources`."""
    parts = config.settings.processes or usable_cores()
    if len(sources) < SPLIT_MIN_SOURCES or parts < 2 or store.path in ("", ":memory:"):
        return await poll_here(sources)
    # A new source whose last attempt failed (a first run while the network was down) most
    # likely fails again, costing no parse: it does not make a round worth a second process.
    failing = {source_id for source_id, h in health.items() if h.consecutive_failures}
    if len({source.id for source in sources} - store.baselined() - failing) < SPLIT_MIN_SOURCES:
        return await poll_here(sources)
    groups = split_by_site(sources, parts)
    if len(groups) < 2:  # one site (or one too big to share): per_host is the bound, not the CPU
        return await poll_here(sources)
    log.info(
        "round of %d sources: %d of them polled by %d child process%s on other cores",
        len(sources),
        sum(len(g) for g in groups[1:]),
        len(groups) - 1,
        "es" if len(groups) > 2 else "",
    )
    context = multiprocessing.get_context("spawn")
    stop, (reader, writer) = context.Event(), context.Pipe(duplex=False)
    loop = asyncio.get_running_loop()
    with childlogs.records_from_children(loop, reader), writer:
        executor = ProcessPoolExecutor(
            max_workers=len(groups) - 1,
            mp_context=context,
            initializer=_child_started,
            initargs=(os.getpid(), stop, writer, childlogs.levels()),
        )
        try:
            elsewhere = [
                loop.run_in_executor(
                    executor, _poll_in_child, config, store.path, [s.id for s in group], recipients, health
                )
                for group in groups[1:]
            ]
            here = await poll_here(groups[0])
            there = await asyncio.gather(*elsewhere)
        except BaseException:  # the round was cancelled (a stop) or failed: the children stop too
            stop.set()
            raise
        finally:
            await _all_exited(executor)
    found = {outcome.source_id: outcome for outcome in [*here, *(o for group in there for o in group)]}
    return [found[source.id] for source in sources]


async def _all_exited(executor: ProcessPoolExecutor) -> None:
    """executor.shutdown(wait=True), off the event loop: until they stop, children write log
    lines that only the loop reads, and one whose pipe is full would wait for it forever."""
    exited = asyncio.get_running_loop().run_in_executor(
        None, functools.partial(executor.shutdown, wait=True, cancel_futures=True)
    )
    stopped_again = False
    try:
        while not exited.done():
            try:
                await asyncio.shield(exited)
            except asyncio.CancelledError:  # a second stop: the children are stopping already
                stopped_again = True
    finally:
        if stopped_again:  # the round was stopped: that, not how the pool shut down, is its end
            raise asyncio.CancelledError


# --- in the child ----------------------------------------------------------------------------

_stop = None  # the parent's stop event (a multiprocessing Event)


def _child_started(parent: int, stop, writer, levels: dict[str, int]) -> None:
    global _stop
    _stop = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):  # Linux: killed with the parent, even by SIGKILL
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    childlogs.send_to_parent(writer, levels)  # the parent writes them as its own


def _poll_in_child(
    config: Config, db_path: str, source_ids: list[str], recipients: Recipients, health: dict[str, Health]
) -> list:
    from monitor.run import poll_sources  # run imports this module

    wanted = set(source_ids)
    sources = [source for source in config.sources if source.id in wanted]
    store = Store.open(db_path)
    try:
        return asyncio.run(_unless_stopped(poll_sources(config, store, sources, recipients, health)))
    finally:
        store.close()


async def _unless_stopped(work: Awaitable[list]) -> list:
    """`work`'s result; cancelled as soon as the parent's round is (its sources are due next start)."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        if _stop is not None and _stop.is_set():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return []
    return task.result()
