"""One round of monitoring: the only module that knows the order of the stages."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from monitor import guards
from monitor.classify import CompiledTopic, classify, compile_topics
from monitor.cores import poll_on_every_core
from monitor.diff import diff
from monitor.dry_run import DryRunSightings
from monitor.errors import SourceError, StoreError
from monitor.extract import extract_unless_same
from monitor.fetch import Fetcher, HostSlots, host_of, open_fetcher, retry_waits
from monitor.follow import follow
from monitor.listing_moves import rekeyed
from monitor.models import (
    MARKUP,
    Change,
    Config,
    Health,
    Page,
    Previous,
    Settings,
    Source,
)
from monitor.normalize import one_line
from monitor.revisits import Revisit, read_unread_items, recheck_documents
from monitor.store import Recipients, Store

log = logging.getLogger("monitor.run")


@dataclass(frozen=True)
class SourceOutcome:
    source_id: str
    status: str  # baseline | changed | updated (cosmetic only) | unchanged | not_modified | error
    items: int = 0
    changes: tuple[Change, ...] = ()
    error: str = ""
    duration_ms: int = 0
    duplicates: int = 0  # changes on a topic that repeat a release alerted through another source
    repeated: tuple[int, ...] = ()  # in a dry run, which changes those are (indices into changes)

    @property
    def alerts(self) -> int:
        return sum(1 for change in self.changes if change.topics) - self.duplicates


@dataclass(frozen=True)
class RoundResult:
    outcomes: tuple[SourceOutcome, ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[SourceOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "error")


async def run_round(
    config: Config,
    store: Store,
    sources: Sequence[Source],
    recipients: Recipients,
    dry_run: bool = False,
    notice_chats: Sequence[str] = (),
    host_slots: HostSlots | None = None,
) -> RoundResult:
    """Poll `sources` concurrently; each one's result is stored in its own transaction.

    `recipients` are the chats alerts are queued for, with their topic filters; `notice_chats`
    receive one source-health notice when a source keeps failing, and one when it recovers;
    `host_slots`: per-host limits shared with the rounds running beside this one.
    """
    health = store.health()

    async def poll_here(share: Sequence[Source]) -> list[SourceOutcome]:
        return await poll_sources(config, store, share, recipients, health, dry_run, host_slots)

    if dry_run:  # a dry run may read a database it must not write, or none at all: one process
        outcomes = await poll_here(sources)
    else:
        outcomes = await poll_on_every_core(config, store, sources, recipients, health, poll_here)
    if not dry_run:
        for outcome in outcomes:
            notice = health_notice(
                outcome, _failures(health, outcome.source_id), config.telegram.health_after
            )
            if notice and notice_chats:
                store.queue_notice(notice, notice_chats)
    return RoundResult(tuple(outcomes))


async def poll_sources(
    config: Config,
    store: Store,
    sources: Sequence[Source],
    recipients: Recipients,
    health: Mapping[str, Health],
    dry_run: bool = False,
    host_slots: HostSlots | None = None,
) -> list[SourceOutcome]:
    """Poll `sources` concurrently, in this process (a round's share, see cores.py): `per_host`
    workers for each host take its sources in turn. Only the sources in flight exist as tasks,
    so a round's memory does not grow with the number of sources waiting for their host. A
    source that waits to retry (a 429's Retry-After, a backoff) does not hold its host up: the
    wait starts another worker for the host (the fetcher still sends at most `per_host` at once)."""
    topics = compile_topics(config.topics)
    queues: dict[str, deque[Source]] = {}
    for source in sources:
        queues.setdefault(host_of(source.url), deque()).append(source)
    outcomes: dict[str, SourceOutcome] = {}
    workers: list[asyncio.Task] = []
    working: Counter[str] = Counter()  # a host's workers still running
    stopping = False
    async with open_fetcher(config.settings, host_slots) as fetcher:
        sightings = DryRunSightings(store, config.settings.duplicate_window) if dry_run else None
        ctx = RoundContext(fetcher, store, topics, recipients, health, config.settings, sightings)

        def start_worker(host: str, queue: deque[Source]) -> None:
            if queue and not stopping:
                working[host] += 1
                # a context of its own: started during a fetch, it would inherit that fetch's
                # (the check of a document's address: network.public_peers_only)
                workers.append(asyncio.create_task(worker(host, queue), context=contextvars.Context()))

        async def worker(host: str, queue: deque[Source]) -> None:
            retry_waits.set(lambda: start_worker(host, queue))
            try:
                while queue and not stopping:
                    source = queue.popleft()
                    outcomes[source.id] = await _poll(ctx, source)
            finally:
                working[host] -= 1
            if not working[host] and not stopping:
                await fetcher.release(host)

        per_host = max(1, config.settings.per_host)
        for host, queue in queues.items():
            for _ in range(min(per_host, len(queue))):
                start_worker(host, queue)
        try:
            awaited = 0
            while awaited < len(workers):  # workers started by a retry wait join the list meanwhile
                started, awaited = workers[awaited:], len(workers)
                await asyncio.gather(*started)
        finally:  # stopped or failed: every worker ends before the clients close
            stopping = True
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
    return [outcomes[source.id] for source in sources]


def _failures(health: Mapping[str, Health], source_id: str) -> int:
    return health[source_id].consecutive_failures if source_id in health else 0


def with_earlier_topics(store: Store, changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """A correction, withdrawal or return of a release on a topic by its text (its detail page, its
    PDF), which only its NEW read: on the topics it had then, else it would be logged silently."""
    untold = {c.item_key for c in changes if c.kind in ("changed", "removed") and not c.topics and c.item_key}
    if not untold:
        return changes
    earlier = store.earlier_topics(changes[0].source_id, untold)
    return tuple(
        replace(c, topics=earlier[c.item_key][0], matches=earlier[c.item_key][1])
        if not c.topics and c.item_key in untold and c.item_key in earlier
        else c
        for c in changes
    )


def health_notice(outcome: SourceOutcome, failures_before: int, threshold: int) -> str:
    """One notice when a source reaches `threshold` consecutive failures, one when it recovers."""
    if outcome.status == "error" and failures_before + 1 == threshold:
        return f"Source {outcome.source_id} has failed {threshold} times in a row: {outcome.error}"
    if outcome.status != "error" and failures_before >= threshold > 0:
        return f"Source {outcome.source_id} has recovered after {failures_before} failed attempts."
    return ""


@dataclass(frozen=True)
class RoundContext:
    """What every source of one round shares."""

    fetcher: Fetcher
    store: Store
    topics: Mapping[str, CompiledTopic]
    recipients: Recipients
    health: Mapping[str, Health]
    settings: Settings = field(default_factory=Settings)
    sightings: DryRunSightings | None = None  # a dry run's: it stores nothing

    @property
    def dry_run(self) -> bool:
        return self.sightings is not None


async def _poll(ctx: RoundContext, source: Source) -> SourceOutcome:
    started = datetime.now(UTC)
    page: Page | None = None
    try:
        state = ctx.store.state(source.id)  # small: the snapshot is loaded only if it is needed
        # Validators and the noise digest only with a snapshot to fall back on.
        page = await ctx.fetcher.fetch(source, state if state.snapshot_hash else None)
        outcome = await _process(ctx, source, page, state)
        outcome = await _revisit(ctx, source, outcome)
    except SourceError as exc:  # one line, no control codes: the reason often quotes the server
        outcome = SourceOutcome(source.id, "error", error=one_line(str(exc)))
    except StoreError:  # the disk is full or read-only: not this source's fault, and no use going on
        raise
    except Exception as exc:  # a bug for one source must not stop the others
        log.debug("%s: unexpected error", source.id, exc_info=True)
        outcome = SourceOutcome(
            source.id, "error", error=one_line(f"internal error: {type(exc).__name__}: {exc}")
        )
    if outcome.status == "error" and not ctx.dry_run:
        ctx.store.record_failure(source, outcome.error, page, started.isoformat(timespec="seconds"))
    duration = int((datetime.now(UTC) - started).total_seconds() * 1000)
    outcome = SourceOutcome(**{**outcome.__dict__, "duration_ms": duration})
    _log_outcome(outcome, ctx.dry_run)
    return outcome


async def _process(ctx: RoundContext, source: Source, page: Page, state: Previous) -> SourceOutcome:
    store, known = ctx.store, bool(state.snapshot_hash)
    if page.not_modified or (known and page.stable_sha256 == state.stable_sha256):
        # The same bytes as last time, but for per-request tokens: nothing to parse. 304 likewise.
        status = "not_modified" if page.not_modified else "unchanged"
        if not ctx.dry_run:
            store.record_unchanged(source, page, status)
        return SourceOutcome(source.id, status)

    def held_back() -> tuple[int, str]:  # read only when a guard would refuse: rarely
        return store.held_back(source.id, guards.GUARD_REASONS)

    if known and source.kind in MARKUP:
        guards.refuse_cut_short(page, lambda: store.body(state.raw_sha256), held_back)
    snapshot = extract_unless_same(source, page, state.region if known else "")
    if snapshot is None:  # the region it reads is byte-for-byte the last one: only noise changed
        if not ctx.dry_run:
            store.record_unchanged(source, page, "unchanged")
        return SourceOutcome(source.id, "unchanged")
    previous = store.previous(source.id, state) if known else state
    old = rekeyed(previous.snapshot, source.ignore_params)
    count = len(snapshot.items) or snapshot.text.count("\n") + 1
    if old and snapshot.hash == old.hash:
        if not ctx.dry_run:
            store.record_unchanged(source, page, "unchanged", snapshot.region, extracted=True)
        return SourceOutcome(source.id, "unchanged", count)

    shrink_taken = guards.refuse_sudden_shrink(source, old, snapshot, held_back)
    old = guards.unless_replaced(source, old, snapshot, held_back)
    found = guards.without_history(
        source, old, snapshot, diff(source, old, snapshot, previous.known_keys, previous.withdrawn)
    )
    # a shrink held back for rounds and hours is confirmed already: its removals go out now
    undone = store.last_removed_lines(source.id) if any(c.kind == "page" and c.added for c in found) else ()
    found, missing_once = guards.confirmed_removals(found, previous.pending_removal, shrink_taken, undone)
    stored = guards.with_missing(snapshot, old, missing_once)
    found, followed = await follow(ctx.fetcher, store.documents, source, found, ctx.settings.detail_limit)
    changes = with_earlier_topics(
        store, tuple(classify(change, ctx.topics, source.topics) for change in found)
    )
    duplicates, repeated = 0, ()
    if ctx.sightings is not None:
        repeated = ctx.sightings.repeated(source.id, changes)
        duplicates = len(repeated)
    else:
        duplicates = store.record_snapshot(
            source,
            page,
            old,
            stored,
            changes,
            ctx.recipients,
            previous.raw_sha256,
            followed,
            ctx.settings.duplicate_window,
            missing_once,
        )
    status = "baseline" if not old else "changed" if changes else "updated"
    return SourceOutcome(source.id, status, count, changes, duplicates=duplicates, repeated=repeated)


async def _revisit(ctx: RoundContext, source: Source, outcome: SourceOutcome) -> SourceOutcome:
    """Known PDFs and unread new items of a source that follows its items (see revisits)."""
    if not source.detail or ctx.dry_run or outcome.status == "error" or ctx.settings.detail_limit <= 0:
        return outcome
    visit = Revisit(ctx.fetcher, ctx.store, source, ctx.topics, ctx.recipients, ctx.settings)
    just_found = {change.item_key for change in outcome.changes if change.kind == "new"}
    for revisited in (await recheck_documents(visit), await read_unread_items(visit, just_found)):
        if revisited.changes:
            status = (
                "changed" if outcome.status in ("unchanged", "not_modified", "updated") else outcome.status
            )
            outcome = replace(
                outcome,
                status=status,
                changes=(*outcome.changes, *revisited.changes),
                duplicates=outcome.duplicates + revisited.repeats,
            )
    return outcome


def _log_outcome(outcome: SourceOutcome, dry_run: bool = False) -> None:
    """One line per source per round; the fields also go to `--log-format json` as they are (a
    dry run's with "dry_run": true, for a log collector not to count its alerts as sent)."""
    fields = {
        "source": outcome.source_id,
        "status": outcome.status,
        "items": outcome.items,
        "changes": len(outcome.changes),
        "alerts": outcome.alerts,
        "duration_ms": outcome.duration_ms,
        **({"dry_run": True} if dry_run else {}),
    }
    if outcome.status == "error":
        log.warning(
            "source %s failed: %s (%d ms)",
            outcome.source_id,
            outcome.error,
            outcome.duration_ms,
            extra={**fields, "error": outcome.error},
        )
        return
    # A body the same as the last one is not parsed: its items were not counted, not zero.
    counted = f", {outcome.items} items/lines" if outcome.items else ""  # none counted: not parsed
    log.info(
        "%s: %s%s, %d changes, %d alerts (%d ms)",
        outcome.source_id,
        outcome.status,
        counted,
        len(outcome.changes),
        outcome.alerts,
        outcome.duration_ms,
        extra=fields,
    )
