"""`policy-monitor health`: is the monitor keeping up? For Docker's HEALTHCHECK and for cron watchers.

Healthy while the last round finished within twice the shortest interval (working hours taken
into account), or while a long-running run that has just started is within its start-up grace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.models import RunState, Source
from monitor.render import hk_time
from monitor.schedule import shortest_interval

STARTUP_GRACE_SECONDS = 300.0  # the catch-up spread (1 min) and a first round with slow sources


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str  # one line


def assess(sources: Sequence[Source], state: RunState, now: datetime) -> Verdict:
    started = datetime.fromisoformat(state.started_at) if state.started_at else None
    last = datetime.fromisoformat(state.last_round_at) if state.last_round_at else None
    if last is None and started is None:
        return Verdict(
            False,
            "no round has finished on this database yet (`policy-monitor run` records each one it "
            "completes; a round stopped half-way is not one)",
        )
    interval = shortest_interval(sources, [m for m in (last, now) if m])
    limit = 2 * interval
    deadlines = []
    if last:
        deadlines.append(last + timedelta(seconds=limit))
    if started:
        deadlines.append(started + timedelta(seconds=STARTUP_GRACE_SECONDS))
    grace = timedelta(seconds=STARTUP_GRACE_SECONDS)
    starting = started is not None and (last is None or last < started)  # no round since the start
    if now <= max(deadlines):
        if starting and (last is None or now - started < grace):
            return Verdict(
                True, f"started {_ago(started, now)}; first round due (grace {_span(grace.total_seconds())})"
            )
        if last is not None and now > last + timedelta(seconds=limit):  # healthy by the start's grace only
            return Verdict(
                True,
                f"started {_ago(started, now)}, within its start-up grace ({_span(grace.total_seconds())}); "
                f"the last round finished {_ago(last, now)}",
            )
        return Verdict(True, f"last round finished {_ago(last, now)}; expected within {_span(limit)}")
    if starting:
        return Verdict(
            False,
            f"no round finished since the start {_ago(started, now)} ({hk_time(started.isoformat())}); "
            f"expected within {_span(grace.total_seconds())}",
        )
    return Verdict(
        False,
        f"the last round finished {_ago(last, now)} ({hk_time(last.isoformat())}); expected within "
        f"{_span(limit)} (twice the shortest interval, {_span(interval)})",
    )


def _ago(moment: datetime, now: datetime) -> str:
    return f"{_span((now - moment).total_seconds())} ago"


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
