"""What a dry run would alert. It stores nothing, so the repeats of a release seen through
another source, which a round's store finds in the change log, are kept track of here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from monitor.models import Change, Config, LoggedChange
from monitor.store import Store, utc_now
from monitor.store.events import release_keys

if TYPE_CHECKING:
    from monitor.run import RoundResult


class DryRunSightings:
    """A dry run stores no change for the next source's to be found a repeat of (see
    store.first_sighting): the releases its sources alerted so far are kept here instead."""

    def __init__(self, store: Store, window: float):
        self._store, self._window = store, window
        self._first_source: dict[tuple[int, str], str] = {}  # (which key, its value) -> source

    def repeated(self, source_id: str, changes: Sequence[Change]) -> tuple[int, ...]:
        """Which of `changes` on a topic repeat a release alerted through another source, earlier
        in this round or logged before, as a round's store would find."""
        now, repeats = utc_now(), []
        for index, change in enumerate(changes):
            if not change.topics:
                continue
            keys = [(n, key) for n, key in enumerate(release_keys(change)) if key]
            if any(self._first_source.get(key, source_id) != source_id for key in keys) or (
                self._store.first_sighting(source_id, change, now, self._window) is not None
            ):
                repeats.append(index)
                continue
            for key in keys:
                self._first_source.setdefault(key, source_id)
        return tuple(repeats)


def dry_run_alerts(result: RoundResult, config: Config) -> list[LoggedChange]:
    """The alerts a dry run would have sent, shaped like logged changes (id 0: never stored),
    without the repeats of a release alerted through another source."""
    now = utc_now()
    regulators = {s.id: s.regulator for s in config.sources}
    return [
        LoggedChange(0, regulators[o.source_id], now, now, change)
        for o in result.outcomes
        for index, change in enumerate(o.changes)
        if change.topics and index not in o.repeated
    ]
