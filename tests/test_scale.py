"""What keeps a round cheap as the source list grows: state loaded late, noise skipped unparsed, shards."""

from __future__ import annotations

from monitor.fetch import Fetcher
from monitor.store import Store
from tests.conftest import rss_source


def test_a_source_s_stored_snapshot_is_loaded_only_once_its_page_arrived(monitor, capsys, monkeypatch):
    """Loading every source's snapshot before any fetch holds them all in memory at once."""
    monitor.write(*(rss_source(f"feed-{i}", "/sfc/en/rss/press-releases.xml") for i in range(6)))
    monitor.round(capsys)
    events: list[tuple[str, str]] = []
    fetch, previous = Fetcher.fetch, Store.previous

    async def recorded_fetch(self, source, validators=None):
        page = await fetch(self, source, validators)
        events.append(("fetched", source.id))
        return page

    def recorded_previous(self, source_id):
        events.append(("loaded", source_id))
        return previous(self, source_id)

    monkeypatch.setattr(Fetcher, "fetch", recorded_fetch)
    monkeypatch.setattr(Store, "previous", recorded_previous)
    assert monitor.round(capsys)[0] == 0
    for i in range(6):
        assert events.index(("fetched", f"feed-{i}")) < events.index(("loaded", f"feed-{i}"))
