"""What a dry run would alert. It stores nothing, so the repeats of a release seen through
another source, which a round's store finds in the change log, are kept track of here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from monitor.models import Change, Config, LoggedChange, Sighting
from monitor.store import Store, utc_now
from monitor.store.events import release_keys

if TYPE_CHECKING:
    from monitor.run import RoundResult


STORED = "\x00stored"  # the first sighting of a release is a change logged before the dry run


class DryRunSightings:
    """A dry run stores no change for the next source's to be found a repeat of (see
    store.first_sighting): the releases its sources alerted so far are kept here instead."""

    def __init__(self, store: Store, window: float):
        self._store, self._window = store, window
        self._first_source: dict[tuple[str, int, str], str] = {}  # (kind, which key, its value) -> source

    def repeated(self, source_id: str, changes: Sequence[Change]) -> tuple[int, ...]:
        """Which of `changes` on a topic repeat a release alerted through another source, earlier
        in this round or logged before, as a round's store would find."""
        now, repeats = utc_now(), []
        for index, change in enumerate(changes):
            if not change.topics:
                continue
            keys = _keys(change)
            first = next(
                (s for key in keys if (s := self._first_source.get(key, source_id)) != source_id), None
            )
            if first is None and self._store.first_sighting(source_id, change, now, self._window) is not None:
                first = STORED
            if first is not None:
                repeats.append(index)
            for key in keys:  # a repeat's other keys lead to its first sighting too
                self._first_source.setdefault(key, first or source_id)
        return tuple(repeats)


def dry_run_alerts(result: RoundResult, config: Config) -> list[LoggedChange]:
    """The alerts a dry run would have sent, shaped like logged changes (id 0: never stored):
    without the repeats of a release alerted through another source, each listed under the alert
    it repeats (its "Also:" line), as a round's alert lists them."""
    now = utc_now()
    sources = {s.id: s for s in config.sources}
    alerts: list[LoggedChange] = []
    first_with: dict[tuple[str, int, str], int] = {}  # (kind, which key, its value) -> its alert
    for outcome in result.outcomes:
        for index, change in enumerate(outcome.changes):
            if change.topics and index not in outcome.repeated:
                source = sources[outcome.source_id]
                for key in _keys(change):
                    first_with.setdefault(key, len(alerts))
                alerts.append(LoggedChange(0, source.regulator, now, now, change, language=source.language))
    seen_in: dict[int, list[Sighting]] = {}
    for outcome in result.outcomes:
        for index in outcome.repeated:
            change = outcome.changes[index]
            first = next((first_with[key] for key in _keys(change) if key in first_with), None)
            if first is not None:  # else alerted in an earlier round
                for key in _keys(change):
                    first_with.setdefault(key, first)
                sighting = Sighting(
                    outcome.source_id, change.link, sources[outcome.source_id].language, change.title
                )
                seen_in.setdefault(first, []).append(sighting)
    return [replace(alert, seen_in=tuple(seen_in.get(n, ()))) for n, alert in enumerate(alerts)]


def _keys(change: Change) -> list[tuple[str, int, str]]:
    """A change's release keys, by kind: a release's NEW and its correction are two events."""
    return [(change.kind, n, key) for n, key in enumerate(release_keys(change)) if key]
