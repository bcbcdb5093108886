"""(previous Snapshot, new Snapshot) -> [Change]. Pure. No previous snapshot: silent baseline."""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from monitor.models import Change, Item, Snapshot, Source
from monitor.noise import without_stamps
from monitor.normalize import CJK, MONTHS, fingerprint, normalize_link

MIN_GROWTH = 10  # new items at once before a listing's history is told from news by date
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}$")
# A date written loosely ("Jul 2026", "2026年7月", "30/07/26"): (year, month, day or 0).
LOOSE_DATES = (
    (re.compile(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-](\d{2})$"), "dmy"),
    (re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月"), "ym"),
    (re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(\d{4})\b", re.I), "my"),
)


def diff(
    source: Source,
    previous: Snapshot | None,
    current: Snapshot,
    known_keys: Mapping[str, str] | Collection[str] = (),
) -> list[Change]:
    """Changes from `previous` to `current`. `known_keys` are every item key ever seen for the
    source (with its last title, when a mapping), so an item that drops out of a feed and comes back
    is not reported as new; under another title (a reference number reused), it is a change."""
    if previous is None or previous.hash == current.hash:
        return []
    if current.kind == "text":
        return _page_changes(source, previous, current)
    return _item_changes(source, previous.items, current.items, known_keys)


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
    if any(_chinese(i.title) for i in previous.items) != any(_chinese(i.title) for i in current.items):
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
    pairs = {_link_and_title(i) for i in previous.items}
    return not any(_link_and_title(i) in pairs for i in current.items)


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


def _link_and_title(item: Item) -> tuple[str, str]:
    """An item's identity apart from its key: the same link and title are the same item."""
    return normalize_link(item.link), fingerprint(item.title)


def _item_changes(
    source: Source, old: tuple[Item, ...], new: tuple[Item, ...], known: Mapping[str, str] | Collection[str]
) -> list[Change]:
    old_by_key = {item.key: item for item in old}
    # The same link and title under another key is the same item: a feed that starts (or stops)
    # repeating a link switches its items between the link and link + title identities. Built
    # only for an item whose key is new (one or two in a changed listing of fifty).
    old_by_link: dict[tuple[str, str], Item] | None = None
    new_keys = {item.key for item in new}
    changes: list[Change] = []
    for item in new:
        before = old_by_key.get(item.key)
        if before is None:
            if old_by_link is None:
                old_by_link = {_link_and_title(i): i for i in old if i.link}
            same = old_by_link.get(_link_and_title(item))
            if same is not None:
                new_keys.add(same.key)
            elif item.key not in known:
                changes.append(_change(source, "new", item))
            elif isinstance(known, Mapping) and _retitled(known[item.key], item.title):
                changes.append(_change(source, "changed", item, before=known[item.key]))
        elif _retitled(before.title, item.title) or _redated(before, item):
            was = f"{before.title} ({before.date})" if before.date else before.title
            changes.append(_change(source, "changed", item, before=was))
    retained = [(index, item) for index, item in enumerate(old) if item.key in new_keys]
    for index, item in enumerate(old):
        if item.key not in new_keys and not _rolled_off(index, item, retained):
            changes.append(_change(source, "removed", item))
    return changes


def _retitled(before: str, title: str) -> bool:
    """Another title, not only in its spacing or punctuation, nor its translation landing (an SFC
    API listing in Chinese first carries the English title, then the Chinese one)."""
    if before == title or fingerprint(before) == fingerprint(title):
        return False
    return _chinese(before) == _chinese(title)


def _chinese(title: str) -> bool:
    """Whether its first letter is a Chinese character: "證監會就JPEX Exchange Limited發出警告" and
    "《2026年保險業條例草案》" are Chinese titles, "SFC warns public about 恒星交易所" an English one."""
    first = next((ch for ch in title if ch.isalpha()), "")
    return bool(CJK.match(first))


def _redated(before: Item, item: Item) -> bool:
    """Another day: both read as days and different, or both written in a form not read as a day
    and different ("Jul 2026" -> "Aug 2026"). A date that appears or goes, or that one version
    writes in a form read as a day and the other not (a template change), is no edit of the release."""
    old, new = before.date, item.date
    if not old or not new:
        return False
    old_day, new_day = bool(ISO_DAY.match(old[:10])), bool(ISO_DAY.match(new[:10]))
    if old_day and new_day:
        return old[:10] != new[:10]
    if old_day or new_day:
        return False
    loose_old, loose_new = _loose_date(old), _loose_date(new)  # "3 hours ago": none, so no edit
    return loose_old is not None and loose_new is not None and loose_old != loose_new


def _loose_date(text: str) -> tuple[int, int, int] | None:
    for pattern, order in LOOSE_DATES:
        match = pattern.search(text.strip())
        if not match:
            continue
        if order == "dmy":
            return 2000 + int(match[3]), int(match[2]), int(match[1])
        if order == "ym":
            return int(match[1]), int(match[2]), 0
        return int(match[2]), MONTHS.index(match[1][:3].lower()) + 1, 0
    return None


def _rolled_off(index: int, item: Item, retained: list[tuple[int, Item]]) -> bool:
    """Feeds and listings drop their oldest entries as new ones arrive; that is not a removal.

    An item is a real removal only when something older than it is still listed: by date when
    every item has one, else by position (listings are newest first). With nothing retained there
    is no evidence either way, and reporting the whole listing as removed would be a flood.
    """
    if not retained:
        return True
    dates = [kept.date[:10] for _, kept in retained]
    if item.date and all(dates) and item.date[:10] != min(dates):  # a tie: HKMA dates have no time
        return item.date[:10] < min(dates)
    return index > max(kept_index for kept_index, _ in retained)


def _change(source: Source, kind: str, item: Item, before: str = "") -> Change:
    return Change(
        source_id=source.id,
        kind=kind,  # type: ignore[arg-type]
        title=item.title,
        item_key=item.key,
        link=item.link,
        date=item.date,
        text=item.text,
        before=before,
    )


def _page_changes(source: Source, previous: Snapshot, current: Snapshot) -> list[Change]:
    old_lines, new_lines = previous.text.splitlines(), current.text.splitlines()
    if previous.title == current.title and list(map(without_stamps, old_lines)) == list(
        map(without_stamps, new_lines)
    ):
        return []  # only a "generated at" stamp moved: stored, not a change
    lines = list(difflib.unified_diff(old_lines, new_lines, "before", "after", lineterm="", n=2))
    added = tuple(line[1:] for line in lines[2:] if line.startswith("+"))
    removed = tuple(line[1:] for line in lines[2:] if line.startswith("-"))
    title = current.title or source.name or source.id
    if not lines and previous.title != current.title:
        lines = [f"-title: {previous.title}", f"+title: {current.title}"]
    return [
        Change(
            source_id=source.id,
            kind="page",
            title=title,
            link=source.url,
            added=added,
            removed=removed,
            diff="\n".join(lines),
        )
    ]
