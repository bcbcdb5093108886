"""How a listing moved as a whole between two snapshots, for the guards to read before a diff is
trusted: its history coming into view, more releases at once than it shows, a new link format, a
session id in its links. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from monitor.diff import link_and_title
from monitor.models import Change, Item, Snapshot
from monitor.normalize import ISO_DAY, chinese_title, fingerprint, normalize_link

MIN_GROWTH = 10  # new items at once before a listing's history is told from news by date


def without_history(
    previous: Snapshot | None, changes: list[Change], current: Snapshot | None = None
) -> tuple[list[Change], int]:
    """(`changes` without the listing's history, how many items that was): items never seen, dated
    before anything the listing held before (where every date is a day, 2026-07-30, compared as
    such), that are its history coming into view, not news. They enter the snapshot with no change.

    - A listing that suddenly carries more new items than it held, and more than MIN_GROWTH (its
      page grew from 20 items to 100, or a hostile copy): every such item.
    - A listing of a fixed size that dropped an item (withdrawn, or missing from a stale copy):
      the older item that slid in at its bottom, below every item it still lists.

    A release dated back among a few new ones is still news: it is above the items kept, or the
    listing grew by it. A listing of the same size cannot show more new items than it held: the
    turnover guard refuses one that shares nothing with the last."""
    if previous is None or previous.kind != "items" or not previous.items:
        return changes, 0
    new = [c for c in changes if c.kind == "new"]
    dates = [item.date[:10] for item in previous.items]
    if not new or not all(map(ISO_DAY.match, dates)):
        return changes, 0
    oldest = min(dates)
    older = {c.item_key for c in new if ISO_DAY.match(c.date[:10]) and c.date[:10] < oldest}
    if len(new) > max(len(previous.items), MIN_GROWTH):
        history = older
    elif current is not None and older and len(current.items) <= len(previous.items):
        history = _slid_in(previous, current, older)
    else:
        history = set()
    return [c for c in changes if c.kind != "new" or c.item_key not in history], len(history)


def _slid_in(previous: Snapshot, current: Snapshot, older: set[str]) -> set[str]:
    """The `older` items below every item `current` kept, when an item above the last kept one left
    (a withdrawal, or a stale copy's gap): the listing shows its next oldest at its bottom. Not when
    only the bottom item left: that is a back-dated release taking its place."""
    listed = {item.key for item in current.items}
    kept = [i for i, item in enumerate(previous.items) if item.key in listed]
    if not kept or not any(item.key not in listed for item in previous.items[: kept[-1]]):
        return set()
    last_kept = max(
        i for i, item in enumerate(current.items) if item.key in {previous.items[k].key for k in kept}
    )
    return {item.key for item in current.items[last_kept + 1 :] if item.key in older}


def rekeyed(snapshot: Snapshot | None, ignore_params: tuple[str, ...]) -> Snapshot | None:
    """A snapshot stored before the source's `ignore_params` were set, its items keyed by link as
    they are now: else every item would look new, and the turnover guard would hold the source."""
    if snapshot is None or snapshot.kind != "items" or not ignore_params:
        return snapshot
    items = tuple(
        replace(item, key="link:" + normalize_link(item.link, ignore_params))
        if item.key.startswith("link:") and "|" not in item.key and item.link
        else item
        for item in snapshot.items
    )
    return snapshot if items == snapshot.items else replace(snapshot, items=items)


def overflowed(previous: Snapshot, current: Snapshot) -> bool:
    """Whether a listing that shares no item with its last version holds only releases newer than
    it: more were published at once than it shows (a busy day, or the monitor was down), not a new
    link or markup format, which lists the same releases again under their old dates. Only where
    every date is a day, compared as such."""
    old_dates = [item.date[:10] for item in previous.items]
    new_dates = [item.date[:10] for item in current.items]
    if not new_dates or not all(map(ISO_DAY.match, old_dates + new_dates)):
        return False
    if min(new_dates) < max(old_dates):
        return False
    # Not the same releases again: in the other language (a one-day listing switched to Chinese), or
    # reworded around their old titles ("Press release: ...").
    if any(chinese_title(i.title) for i in previous.items) != any(
        chinese_title(i.title) for i in current.items
    ):
        return False
    titles = [fingerprint(item.title) for item in previous.items]
    return not any(old in fingerprint(item.title) for item in current.items for old in titles if old)


def volatile_param(previous: Snapshot, current: Snapshot) -> str:
    """The one query parameter in which the links of the items listed before and now (found by
    title) differ, when every such pair differs in it alone: a session id new on every visit."""
    before = {fingerprint(item.title): item.link for item in previous.items if item.link}
    names: set[str] = set()
    pairs = 0
    for item in current.items:
        old_link = before.get(fingerprint(item.title))
        if not old_link or not item.link:
            continue
        a, b = urlsplit(old_link), urlsplit(item.link)
        if (a.scheme, a.netloc, a.path) != (b.scheme, b.netloc, b.path):
            return ""
        qa, qb = (
            dict(parse_qsl(a.query, keep_blank_values=True)),
            dict(parse_qsl(b.query, keep_blank_values=True)),
        )
        names |= {name for name in qa.keys() | qb.keys() if qa.get(name) != qb.get(name)}
        pairs += 1
        if len(names) > 1:
            return ""
    return next(iter(names)) if pairs >= 3 and len(names) == 1 else ""


def shares_nothing(previous: Snapshot, current: Snapshot) -> bool:
    """No item of `current` was in `previous` (by key, or by link and title)."""
    keys = {i.key for i in previous.items}
    if any(i.key in keys for i in current.items):  # nearly always: a round's listing is last round's
        return False
    pairs = {link_and_title(i) for i in previous.items}
    return not any(link_and_title(i) in pairs for i in current.items)


def matched_by_title(previous: Snapshot, current: Snapshot) -> Snapshot | None:
    """`previous` with each of its items that `current` lists under the same title put under the
    key `current` gives it: after a link format change, a diff against it finds only the titles
    that are really new. None unless at least half of `current` was listed before (by title): a
    different listing altogether has nothing to say about which of its items are news.

    Titles repeat ("Exchange Fund Abridged Balance Sheet", each month): an item is paired with one
    of the same title and date first, then with the first unpaired one of the same title."""
    same_title: dict[str, list[Item]] = defaultdict(list)
    for item in current.items:
        same_title[fingerprint(item.title)].append(item)
    pairs: dict[int, Item] = {}
    taken: set[str] = set()
    for same_date in (True, False):
        for index, old in enumerate(previous.items):
            if index in pairs:
                continue
            candidates = same_title.get(fingerprint(old.title), ())
            found = next(
                (
                    i
                    for i in candidates
                    if i.key not in taken and (not same_date or i.date[:10] == old.date[:10])
                ),
                None,
            )
            if found is not None:
                pairs[index] = found
                taken.add(found.key)
    if not pairs or len(pairs) * 2 < len(current.items):
        return None
    items = tuple(pairs[index] for index in sorted(pairs))  # the old order: roll-off reads positions
    return replace(previous, items=items)  # its hash stays: the stored snapshot, shown as "old"
