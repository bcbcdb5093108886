"""What a source's round reads again besides its listing, a few documents a round: known PDFs (a
silent re-upload is a change) and new items whose text could not be read when they were found (a
release whose topic is only in its text alerts late). Only for sources that follow their items."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from monitor.classify import CompiledTopic, classify
from monitor.fetch import Fetcher
from monitor.follow import follow, recheck
from monitor.models import READ_LATER, Change, Settings, Source
from monitor.store import Recipients, Store

UNREAD_RETRY = timedelta(days=1)  # how long a new item whose text could not be read is tried again


@dataclass(frozen=True)
class Revisited:
    """The changes found on revisiting (stored and queued already), and how many of those on a
    topic repeat a release alerted through another source."""

    changes: tuple[Change, ...] = ()
    repeats: int = 0


@dataclass(frozen=True)
class Revisit:
    """What revisiting one source needs of its round."""

    fetcher: Fetcher
    store: Store
    source: Source
    topics: Mapping[str, CompiledTopic]
    recipients: Recipients
    settings: Settings

    @property
    def budget(self) -> int:  # documents a round, of the source's detail_limit
        return max(1, self.settings.detail_limit // 2)


async def recheck_documents(visit: Revisit) -> Revisited:
    """Known PDFs of the source, downloaded again once per document_recheck."""
    if not visit.settings.document_recheck:
        return Revisited()
    since = (datetime.now(UTC) - timedelta(seconds=visit.settings.document_recheck)).isoformat()
    due = visit.store.documents_due(visit.source.id, since, visit.budget)
    if not due:
        return Revisited()
    found, followed = await recheck(visit.fetcher, visit.source, due)
    changed = [(classify(c, visit.topics, visit.source.topics), page, old) for c, page, old in found]
    repeats = visit.store.record_documents(visit.source, followed, changed, visit.recipients)
    return Revisited(tuple(c for c, _, _ in changed), repeats)


async def read_unread_items(visit: Revisit, just_found: Collection[str]) -> Revisited:
    """New items of the last UNREAD_RETRY whose text could not be read (a detail page down, the
    detail_limit spent), on no topic by their title, read again and alerted now if their text is on
    a topic; `just_found`: the item keys this round found (tried a moment ago). Else a detail page
    down for one round hid such a release for good."""
    since = (datetime.now(UTC) - UNREAD_RETRY).isoformat(timespec="seconds")
    due = visit.store.unread_items(visit.source.id, since, visit.budget)
    due = [logged for logged in due if logged.change.item_key not in just_found]
    if not due:
        return Revisited()
    changes = [logged.change for logged in due]
    found, followed = await follow(visit.fetcher, visit.store.documents, visit.source, changes, len(due))
    tried = list(zip(due, found, strict=True))
    read = [
        (logged.id, classify(replace(change, body_status=READ_LATER), visit.topics, visit.source.topics))
        for logged, change in tried
        if change.body_status == "fetched"
    ]
    unread = [(logged.id, change.body_status) for logged, change in tried if change.body_status != "fetched"]
    repeats = visit.store.record_read_later(
        visit.source, read, unread, followed, visit.recipients, visit.settings.duplicate_window
    )
    return Revisited(tuple(change for _, change in read if change.topics), repeats)
