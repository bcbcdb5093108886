"""The schedule with a fake clock: intervals, working hours, jitter, host spacing, no double start,
catch-up after a restart, and the verdict of `policy-monitor health`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.health import STARTUP_GRACE_SECONDS, assess
from monitor.models import Health, RunState, Settings, Source, Window
from monitor.normalize import HKT
from monitor.schedule import Scheduler, interval_at, next_due, seconds_until_due

MINUTE, HOUR = 60.0, 3600.0
WEEKDAYS = frozenset(range(5))
# Wednesday 2026-11-25 in Hong Kong time; the 28th and 29th are a weekend.
WED = datetime(2026, 11, 25, tzinfo=HKT)


def hkt(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=HKT)


def source(sid: str = "s", interval: float = 15 * MINUTE, host: str = "www.sfc.hk", **extra) -> Source:
    return Source(sid, "SFC", "rss", f"https://{host}/{sid}", (), interval, **extra)


# every 15 min 08:00-22:00 on weekdays, every 3 h otherwise (the README's example)
OFFICE = source("office", window=Window(WEEKDAYS, 8 * 60, 22 * 60), off_hours_interval=3 * HOUR)


def attempted(at: datetime, failures: int = 0, sid: str = "s") -> Health:
    when = at.astimezone(UTC).isoformat(timespec="seconds")
    return Health(sid, failures, when, "" if failures else when)


def test_a_source_is_due_one_interval_after_its_last_attempt():
    last = attempted(hkt(25, 10))
    assert next_due(source(), last) == hkt(25, 10, 15)
    assert seconds_until_due(source(), last, hkt(25, 10, 5)) == 10 * MINUTE
    assert seconds_until_due(source(), last, hkt(25, 10, 20)) == 0
    assert seconds_until_due(source(), None, hkt(25, 10)) == 0  # never polled: due at once


def test_a_failed_source_is_retried_after_at_most_5_minutes():
    hourly = source(interval=HOUR)
    assert next_due(hourly, attempted(hkt(25, 10), failures=2)) == hkt(25, 10, 5)
    assert next_due(source(interval=2 * MINUTE), attempted(hkt(25, 10), failures=1)) == hkt(25, 10, 2)


@pytest.mark.parametrize(
    ("moment", "interval"),
    [
        pytest.param(hkt(25, 8), 15 * MINUTE, id="weekday-opening"),
        pytest.param(hkt(25, 21, 59), 15 * MINUTE, id="weekday-last-minute"),
        pytest.param(hkt(25, 22), 3 * HOUR, id="weekday-closing"),
        pytest.param(hkt(25, 7, 59), 3 * HOUR, id="weekday-early"),
        pytest.param(hkt(28, 12), 3 * HOUR, id="saturday-noon"),
        pytest.param(datetime(2026, 11, 25, 2, tzinfo=UTC), 15 * MINUTE, id="10:00-HKT-given-in-UTC"),
    ],
)
def test_working_hours_are_hong_kong_time(moment, interval):
    assert interval_at(OFFICE, moment) == interval


@pytest.mark.parametrize(
    ("last", "due"),
    [
        pytest.param(hkt(25, 10), hkt(25, 10, 15), id="inside"),
        pytest.param(hkt(25, 7), hkt(25, 8), id="opening-comes-before-3h"),
        pytest.param(hkt(25, 21, 55), hkt(26, 0, 55), id="closing-stretches-to-3h"),
        pytest.param(hkt(27, 21, 50), hkt(28, 0, 50), id="friday-night"),
        pytest.param(hkt(29, 6), hkt(29, 9), id="sunday-stays-3h"),
        pytest.param(hkt(29, 23), hkt(30, 2), id="sunday-night"),
        pytest.param(hkt(30, 6), hkt(30, 8), id="monday-opening"),
    ],
)
def test_next_due_follows_the_interval_in_force(last, due):
    assert next_due(OFFICE, attempted(last)) == due


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on():
    night = source(window=Window(frozenset({4}), 22 * 60, 2 * 60), off_hours_interval=HOUR)  # Fri 22-02
    assert interval_at(night, hkt(27, 23)) == 15 * MINUTE
    assert interval_at(night, hkt(28, 1, 30)) == 15 * MINUTE  # Saturday 01:30: Friday's window
    assert interval_at(night, hkt(28, 23)) == HOUR
    assert interval_at(night, hkt(27, 1)) == HOUR  # Friday 01:00: Thursday had no window


def test_a_day_of_polls_with_working_hours():
    """Driven by the scheduler over one fake Wednesday: 15 min in working hours, 3 h outside."""
    settings = Settings(jitter=0.0, host_spacing=0.0, catch_up=0.0)
    clock = hkt(25, 0)
    scheduler = Scheduler([OFFICE], settings, {}, clock, random.Random(1))
    starts = []
    while clock < hkt(26, 0):
        for started in scheduler.take(clock):
            starts.append(clock)
            scheduler.finished(started.id, attempted(clock, sid=started.id), clock)
        clock += timedelta(minutes=1)
    inside = [s for s in starts if 8 <= s.hour < 22]
    assert len(inside) == 14 * 4  # 08:00, 08:15 ... 21:45
    # outside: from midnight every 3 h; after 21:45 the next poll is 3 h later, at 00:45
    assert [(s.hour, s.minute) for s in starts if not 8 <= s.hour < 22] == [(0, 0), (3, 0), (6, 0)]
    assert inside[0] == hkt(25, 8)  # the opening poll comes at 08:00, not 3 h after 06:00


def test_jitter_is_bounded_and_reproducible():
    settings = Settings(jitter=0.1, host_spacing=0.0, catch_up=0.0)
    hourly = source(interval=HOUR)

    def next_starts(seed: int) -> list[float]:
        now = hkt(25, 10)
        scheduler = Scheduler([hourly], settings, {}, now, random.Random(seed))
        delays = []
        for _ in range(200):
            due = scheduler.due_at("s")
            (started,) = scheduler.take(due)
            now = due.replace(microsecond=0)  # the store keeps seconds
            scheduler.finished(started.id, attempted(now), due)
            delays.append((scheduler.due_at("s") - now).total_seconds() - HOUR)
        return delays

    delays = next_starts(7)
    assert all(0 <= d <= 0.1 * HOUR for d in delays)  # never sooner than the interval
    assert max(delays) > 0.08 * HOUR and min(delays) < 0.02 * HOUR  # spread over the whole range
    assert next_starts(7) == delays and next_starts(8) != delays


def test_jitter_of_a_failed_source_is_a_fraction_of_its_retry_wait():
    settings = Settings(jitter=0.5, host_spacing=0.0, catch_up=0.0)
    now = hkt(25, 10)
    scheduler = Scheduler([source(interval=6 * HOUR)], settings, {}, now, random.Random(3))
    scheduler.take(now)
    scheduler.finished("s", attempted(now, failures=1), now)
    assert 300 <= (scheduler.due_at("s") - now).total_seconds() <= 450


def test_a_running_source_is_never_started_twice():
    settings = Settings(jitter=0.0, host_spacing=0.0, catch_up=0.0)
    now = hkt(25, 10)
    scheduler = Scheduler([source(interval=MINUTE)], settings, {}, now, random.Random(1))
    assert [s.id for s in scheduler.take(now)] == ["s"]
    for minutes in (1, 5, 60):  # the fetch hangs far past its interval
        assert scheduler.take(now + timedelta(minutes=minutes)) == []
    assert scheduler.seconds_to_next(now + timedelta(minutes=60)) is None
    later = now + timedelta(minutes=61)
    scheduler.finished("s", attempted(now), later)  # overdue by then: due again at once
    assert [s.id for s in scheduler.take(later)] == ["s"]


def test_a_clock_that_stepped_back_does_not_stall_a_source():
    settings = Settings(jitter=0.0, host_spacing=0.0, catch_up=0.0)
    now = hkt(25, 10)
    future = {"s": attempted(now + timedelta(hours=2))}  # the last attempt "happened" in two hours
    scheduler = Scheduler([source()], settings, future, now, random.Random(1))
    assert scheduler.due_at("s") == now
    scheduler.take(now)
    scheduler.finished("s", future["s"], now)
    assert scheduler.due_at("s") == now


def test_a_clock_that_steps_back_while_the_run_waits_moves_the_plans_with_it():
    """An NTP step or a restored VM, an hour back, between two polls of a 15-minute source."""
    settings = Settings(jitter=0.0, host_spacing=2.0, catch_up=0.0)
    now = hkt(25, 10)
    scheduler = Scheduler([source("a"), source("b")], settings, {}, now, random.Random(1))
    assert [s.id for s in scheduler.take(now)] == ["a"]
    scheduler.finished("a", attempted(now), now)
    assert scheduler.seconds_to_next(now + timedelta(seconds=1)) == 1.0  # b: host spacing
    stepped = now + timedelta(seconds=1) - HOUR_STEP
    assert scheduler.seconds_to_next(stepped) == 1.0  # not an hour and a second
    assert [s.id for s in scheduler.take(stepped + timedelta(seconds=1))] == ["b"]
    assert scheduler.due_at("a") == now + timedelta(minutes=15) - HOUR_STEP


def test_a_source_finishing_just_after_a_clock_step_is_planned_from_the_new_clock_once():
    settings = Settings(jitter=0.0, host_spacing=0.0, catch_up=0.0)
    now = hkt(25, 10)
    scheduler = Scheduler([source("a")], settings, {}, now, random.Random(1))
    assert [s.id for s in scheduler.take(now)] == ["a"]
    stepped = now + timedelta(seconds=5) - HOUR_STEP  # the step came while a was fetching
    scheduler.finished("a", attempted(stepped), stepped)
    assert scheduler.seconds_to_next(stepped) == 15 * MINUTE  # not due at once (moved back twice)


HOUR_STEP = timedelta(hours=1)


def test_sources_on_one_host_start_host_spacing_apart():
    settings = Settings(jitter=0.0, host_spacing=2.0, catch_up=0.0)
    now = hkt(25, 10)
    sources = [source("a"), source("b"), source("c"), source("other", host="www.hkma.gov.hk")]
    scheduler = Scheduler(sources, settings, {}, now, random.Random(1))
    assert [s.id for s in scheduler.take(now)] == ["a", "other"]
    assert scheduler.seconds_to_next(now) == 2.0
    assert scheduler.take(now + timedelta(seconds=1.9)) == []
    assert [s.id for s in scheduler.take(now + timedelta(seconds=2))] == ["b"]
    assert [s.id for s in scheduler.take(now + timedelta(seconds=4))] == ["c"]


def test_after_a_restart_due_sources_start_promptly_and_spread_out():
    settings = Settings(jitter=0.1, host_spacing=0.0, catch_up=60.0)
    now = hkt(25, 10)
    hosts = [f"host{i}.example" for i in range(40)]
    sources = [source(f"s{i}", host=host) for i, host in enumerate(hosts)]
    health = {f"s{i}": attempted(now - timedelta(minutes=20 + i), sid=f"s{i}") for i in range(38)}
    health["s38"] = attempted(now - timedelta(minutes=5), sid="s38")  # not due yet
    # s39 was never polled
    scheduler = Scheduler(sources, settings, health, now, random.Random(1))
    overdue = sorted((scheduler.due_at(f"s{i}"), f"s{i}") for i in (*range(38), 39))
    starts = [due for due, _ in overdue]
    assert starts[0] == now  # prompt
    assert starts[-1] - now <= timedelta(seconds=60)  # all within catch_up
    assert len({due.replace(microsecond=0) for due in starts}) == len(starts)  # no two in one second
    assert [sid for _, sid in overdue][:3] == ["s39", "s37", "s36"]  # never polled, then most overdue
    assert scheduler.due_at("s38") >= now + timedelta(minutes=10)  # its own time, not the catch-up
    step = (starts[1] - starts[0]).total_seconds()
    assert step == pytest.approx(60 / 39, abs=1e-5)  # evenly spread


def test_a_few_due_sources_catch_up_two_seconds_apart():
    settings = Settings(jitter=0.0, host_spacing=0.0, catch_up=60.0)
    now = hkt(25, 10)
    sources = [source(f"s{i}", host=f"h{i}") for i in range(3)]
    scheduler = Scheduler(sources, settings, {}, now, random.Random(1))
    assert [scheduler.due_at(f"s{i}") - now for i in range(3)] == [timedelta(seconds=s) for s in (0, 2, 4)]


# --- health: the last round within twice the shortest interval, plus a start-up grace -----------


def state(last: datetime | None = None, started: datetime | None = None) -> RunState:
    def iso(moment: datetime | None) -> str:
        return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else ""

    return RunState(iso(started), iso(last))


@pytest.mark.parametrize(
    ("run_state", "now", "healthy", "reason"),
    [
        pytest.param(
            state(),
            hkt(25, 10),
            False,
            "no round has finished on this database yet",
            id="never-ran",
        ),
        pytest.param(
            state(hkt(25, 10)), hkt(25, 10, 29), True, "last round finished 29 min ago", id="recent"
        ),
        pytest.param(
            state(hkt(25, 10)),
            hkt(25, 10, 31),
            False,
            "the last round finished 31 min ago (2026-11-25 10:00 HKT); expected within 30 min "
            "(twice the shortest interval, 15 min)",
            id="overdue",
        ),
        pytest.param(state(None, hkt(25, 10)), hkt(25, 10, 4), True, "started 4 min ago", id="starting"),
        pytest.param(
            state(None, hkt(25, 10)),
            hkt(25, 10, 6),
            False,
            "no round finished since the start 6 min ago",
            id="start-stuck",
        ),
        pytest.param(
            state(hkt(24, 10), hkt(25, 10)), hkt(25, 10, 2), True, "started 2 min ago", id="restart"
        ),
    ],
)
def test_health_verdict(run_state, now, healthy, reason):
    verdict = assess([source(), source("hourly", HOUR)], run_state, now)
    assert verdict.healthy is healthy and reason in verdict.reason
    assert "\n" not in verdict.reason


def test_health_healthy_by_its_start_up_grace_only_says_so():
    """A minute's interval, its last round 4 min ago: late, but within the 5 min after the start."""
    verdict = assess([source(interval=MINUTE)], state(hkt(25, 10, 1), hkt(25, 10)), hkt(25, 10, 5))
    assert verdict.healthy
    assert verdict.reason == (
        "started 5 min ago, within its start-up grace (5 min); the last round finished 4 min ago"
    )  # not "last round finished 4 min ago; expected within 2 min" with a healthy verdict


def test_health_allows_the_longer_interval_outside_working_hours():
    last = hkt(25, 21, 50)  # the last round of the working day; the next is due at 00:50
    assert assess([OFFICE], state(last), hkt(26, 0, 30)).healthy
    assert not assess([OFFICE], state(last), hkt(26, 3, 51)).healthy  # 2 x 3 h later
    assert assess([OFFICE], state(hkt(25, 7)), hkt(25, 8, 5)).healthy  # opening: 08:00 poll may be late
    assert not assess([OFFICE], state(hkt(25, 10)), hkt(25, 10, 31)).healthy


def test_start_up_grace_is_a_few_minutes():
    assert 60 <= STARTUP_GRACE_SECONDS <= 600
    assert WED.weekday() == 2  # the fake calendar above is what it says
