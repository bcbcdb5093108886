"""When each source is polled: intervals, working hours, jitter, host spacing and catch-up.

Pure: every function takes `now` (and a random generator where it draws), so the rules are
tested with a fake clock. `run --once` uses `due_sources`; the long-running `run` keeps a
`Scheduler`, which adds jitter, per-host spacing, no double start and a spread catch-up.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from monitor.models import Health, Settings, Source, Window
from monitor.normalize import HKT

FAILED_RETRY_SECONDS = 300.0  # a failed source is retried after at most this, whatever its interval
CATCH_UP_STEP = 2.0  # seconds between the starts of sources already due at start, at most
CLOCK_STEP = timedelta(seconds=2)  # the wall clock going back by more than this is a step, not jitter


def in_window(window: Window, when: datetime) -> bool:
    """Whether `when` falls inside the working hours (Hong Kong time)."""
    local = when.astimezone(HKT)
    minute = local.hour * 60 + local.minute
    day = local.weekday()
    if window.start < window.end:
        return day in window.days and window.start <= minute < window.end
    # past midnight: the evening belongs to the day it starts on, the early hours to the day before
    return (day in window.days and minute >= window.start) or (
        (day - 1) % 7 in window.days and minute < window.end
    )


def interval_at(source: Source, when: datetime) -> float:
    """The source's interval in force at `when`."""
    if source.window is None or in_window(source.window, when):
        return source.interval
    return source.off_hours_interval


def _wait_at(source: Source, when: datetime, failed: bool) -> float:
    interval = interval_at(source, when)
    return min(interval, FAILED_RETRY_SECONDS) if failed else interval


def _next_boundary(window: Window | None, after: datetime) -> datetime | None:
    """The first window start or end strictly after `after` (a day that is not in the window
    gives a boundary too; an extra boundary only splits a stretch of one interval in two)."""
    if window is None:
        return None
    local = after.astimezone(HKT)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    candidates = (
        midnight + timedelta(days=day, minutes=minute)
        for day in range(2)
        for minute in (window.start, window.end % 1440)
    )
    return min(c for c in candidates if c > local)


def next_due(source: Source, last: Health | None) -> datetime | None:
    """The earliest time at least one interval (the one in force then) after the last attempt;
    None for a source never attempted (due at once). A failed source is retried sooner."""
    if not last or not last.last_attempt_at:
        return None
    attempted = datetime.fromisoformat(last.last_attempt_at)
    failed = last.consecutive_failures > 0
    moment = attempted
    for _ in range(1000):  # two boundaries a day: enough for any interval up to a year
        due = max(moment, attempted + timedelta(seconds=_wait_at(source, moment, failed)))
        boundary = _next_boundary(source.window, moment)
        if boundary is None or due < boundary:
            return due
        moment = boundary
    return moment


def seconds_until_due(source: Source, last: Health | None, now: datetime) -> float:
    """0 when the source should be polled now; never-attempted sources are always due.

    A source whose last attempt failed is retried sooner (after at most 5 minutes), so a
    regulator's short outage does not hide a release for a whole interval.
    """
    due = _planned(source, last, now)
    return 0.0 if due is None else (due - now).total_seconds()


_NEVER = datetime.min.replace(tzinfo=UTC)
DUE_EARLY = 20.0  # seconds: see due_sources; well under a cron period of a minute  # never-polled sources sort first in a catch-up


def _planned(source: Source, last: Health | None, now: datetime) -> datetime | None:
    """The next due time if it is still to come; None when the source is due now (or the clock
    stepped back past its last attempt: poll rather than stall for that long)."""
    due = next_due(source, last)
    if due is None or due <= now or (last and datetime.fromisoformat(last.last_attempt_at) > now):
        return None
    return due


def due_sources(sources: Sequence[Source], health: Mapping[str, Health], now: datetime) -> list[Source]:
    """The sources whose time has come (see `seconds_until_due`); `run --once` polls these. Those
    due within DUE_EARLY seconds (a quarter of a short interval) count as due: a source's attempt is
    dated when its request starts, after its turn at its host, so without this leeway the next cron
    tick would find it a few seconds early and poll it one tick late."""
    return [
        s for s in sources if seconds_until_due(s, health.get(s.id), now) <= min(DUE_EARLY, s.interval / 4)
    ]


def host_of(source: Source) -> str:
    return urlsplit(source.url).netloc.lower()


class Scheduler:
    """The long-running run's plan: when each source starts next.

    - each wait is the source's interval (the one in force, see `interval_at`) plus a random
      jitter of up to `settings.jitter` times that interval, so sources drift apart;
    - sources already due at start (a restart, a fresh database) start one after another, at
      most CATCH_UP_STEP seconds apart and all within `settings.catch_up`, the most overdue first;
    - two sources on one host start at least `settings.host_spacing` seconds apart;
    - a source still running is never started again.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        settings: Settings,
        health: Mapping[str, Health],
        now: datetime,
        rng: random.Random,
    ):
        self._sources = {s.id: s for s in sources}
        self._settings = settings
        self._rng = rng
        self._due: dict[str, datetime] = {}
        self._running: set[str] = set()
        self._host_free: dict[str, datetime] = {}
        self._clock = now  # the wall clock when last asked: a step back moves every plan with it
        overdue: list[tuple[datetime, int, Source]] = []
        for order, source in enumerate(sources):
            last = health.get(source.id)
            due = _planned(source, last, now)
            if due is None:
                overdue.append((next_due(source, last) or _NEVER, order, source))
            else:
                self._due[source.id] = self._jittered(source, due, last)
        overdue.sort(key=lambda entry: entry[:2])
        step = min(CATCH_UP_STEP, settings.catch_up / len(overdue)) if overdue else 0.0
        for slot, (_, _, source) in enumerate(overdue):
            self._due[source.id] = now + timedelta(seconds=slot * step)

    def due_at(self, source_id: str) -> datetime:
        return self._due[source_id]

    def take(self, now: datetime) -> list[Source]:
        """The sources to start now; they count as running until `finished`."""
        self._follow_clock(now)
        started: list[Source] = []
        for source_id in sorted(self._due, key=self._due.__getitem__):
            if source_id in self._running or self._due[source_id] > now:
                continue
            host = host_of(self._sources[source_id])
            if self._host_free.get(host, now) > now:
                continue
            self._host_free[host] = now + timedelta(seconds=self._settings.host_spacing)
            self._running.add(source_id)
            started.append(self._sources[source_id])
        return started

    def finished(self, source_id: str, last: Health | None, now: datetime) -> None:
        """Plan the next start of a source from its latest attempt (the store's health row)."""
        self._follow_clock(now)  # first: a plan made on a stepped clock must not be moved again
        self._running.discard(source_id)
        source = self._sources[source_id]
        self._due[source_id] = self._jittered(source, _planned(source, last, now) or now, last)

    def seconds_to_next(self, now: datetime) -> float | None:
        """How long until a source can start (host spacing included); None while all are running."""
        self._follow_clock(now)
        waits = [
            max(self._due[sid], self._host_free.get(host_of(self._sources[sid]), now))
            for sid in self._due
            if sid not in self._running
        ]
        return max(0.0, (min(waits) - now).total_seconds()) if waits else None

    def _follow_clock(self, now: datetime) -> None:
        """The wall clock stepped back (an NTP step, a restored VM): every plan moves back with it.
        Left as they were, the plans would lie the step ahead, and the run would wait it out."""
        step = now - self._clock
        if step < -CLOCK_STEP:
            self._due = {source_id: due + step for source_id, due in self._due.items()}
            self._host_free = {host: free + step for host, free in self._host_free.items()}
        self._clock = now

    def _jittered(self, source: Source, due: datetime, last: Health | None) -> datetime:
        failed = bool(last and last.consecutive_failures)
        spread = self._settings.jitter * _wait_at(source, due, failed)
        return due + timedelta(seconds=self._rng.uniform(0, spread))


def shortest_interval(sources: Iterable[Source], moments: Sequence[datetime]) -> float:
    """The shortest interval any source is sure to keep around `moments`: for each source the
    longest of its intervals at those moments (working hours can change it in between)."""
    return min(max(interval_at(s, m) for m in moments) for s in sources)
