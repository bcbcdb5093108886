"""(previous Snapshot, new Snapshot) -> [Change]. Pure. No previous snapshot: silent baseline."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Collection, Mapping

from monitor.models import Change, Item, Snapshot, Source
from monitor.noise import without_stamps
from monitor.normalize import ISO_DAY, MONTHS, SESSION_IN_PATH, chinese_title, fingerprint, normalize_link

# A date written loosely ("Jul 2026", "2026年7月", "30/07/26"): (year, month, day or 0).
LOOSE_DATES = (
    (re.compile(r"(?<!\d)(\d{1,2})[/.-](\d{1,2})[/.-](\d{2})$"), "dmy"),
    (re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月"), "ym"),
    (re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,?\s+(\d{4})\b", re.I), "my"),
)


# How the `before` of a "changed" change begins for an item back after its removal.
LISTED_AGAIN = "removed (no longer listed) on "


def diff(
    source: Source,
    previous: Snapshot | None,
    current: Snapshot,
    known_keys: Mapping[str, str] | Collection[str] = (),
    withdrawn: Mapping[str, str] | None = None,
) -> list[Change]:
    """Changes from `previous` to `current`. `known_keys` are every item key ever seen for the
    source (with its last title, when a mapping), so an item that drops out of a feed and comes back
    is not reported as new; under another title (a reference number reused), it is a change.
    `withdrawn`: the keys whose last logged change is their removal (with its time): one that is
    listed again is a change, "listed again", not silence under a REMOVED left standing."""
    if previous is None or previous.hash == current.hash:
        return []
    if current.kind == "text":
        return _page_changes(source, previous, current)
    return _item_changes(source, previous.items, current.items, known_keys, withdrawn or {})


def link_and_title(item: Item) -> tuple[str, str]:
    """An item's identity apart from its key: the same link (but for a trailing "/") and title are
    the same item."""
    return normalize_link(item.link).rstrip("/"), fingerprint(item.title)


def _item_changes(
    source: Source,
    old: tuple[Item, ...],
    new: tuple[Item, ...],
    known: Mapping[str, str] | Collection[str],
    withdrawn: Mapping[str, str],
) -> list[Change]:
    old_by_key = {item.key: item for item in old}
    # The same link and title under another key is the same item: a feed that starts (or stops)
    # repeating a link switches its items between the link and link + title identities. Built
    # only for an item whose key is new (one or two in a changed listing of fifty).
    old_by_link: dict[tuple[str, str], Item] | None = None
    new_keys = {item.key for item in new}
    listed = frozenset(new_keys)
    # A reference number an older version gave two titles ("id:26PR9|<title>") is one item now.
    split = {i.key: i.key.split("|")[0] for i in old if "|" in i.key and i.key.startswith("id:")}
    new_keys |= {key for key, ref in split.items() if ref in listed}
    changes: list[Change] = []
    for item in new:
        before = old_by_key.get(item.key)
        if before is None and item.key in split.values():
            continue
        if before is None:
            if old_by_link is None:
                old_by_link = {link_and_title(i): i for i in old if i.link}
            same = old_by_link.get(link_and_title(item)) or _link_filled_in(item, old, listed)
            if same is not None:
                new_keys.add(same.key)
            elif item.key in withdrawn:
                was = f"{LISTED_AGAIN}{withdrawn[item.key][:10]}; listed again now"
                changes.append(_change(source, "changed", item, before=was))
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


def _link_filled_in(item: Item, old: tuple[Item, ...], listed: Collection[str]) -> Item | None:
    """The one item listed before under the same title with no link, when it has one now, or the
    other way round (an API record whose link field was null a round), and no longer listed: keyed
    by its link, then by its title, it is one item. Not where a reference number is the identity:
    two numbers are two releases, whatever their titles."""
    if item.key.startswith("id:"):
        return None
    title = fingerprint(item.title)
    same = [
        i
        for i in old
        if bool(i.link) != bool(item.link)
        and not i.key.startswith("id:")
        and i.key not in listed
        and fingerprint(i.title) == title
    ]
    return same[0] if len(same) == 1 else None


def _retitled(before: str, title: str) -> bool:
    """Another title, not only in its spacing or punctuation, nor its translation landing (an SFC
    API listing in Chinese first carries the English title, then the Chinese one)."""
    if before == title or fingerprint(before) == fingerprint(title):
        return False
    if "&" in before + title and fingerprint(html.unescape(before)) == fingerprint(html.unescape(title)):
        return False  # "HKMA &amp; SFC" stored by an older version that did not decode an API's title
    return chinese_title(before) == chinese_title(title)


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
        link=SESSION_IN_PATH.sub("", item.link),  # the monitor's own session with the site: not the reader's
        date=item.date,
        text=item.text,
        before=before,
    )


def _row_blocks(lines: list[str]) -> list[object]:
    """A page's lines with each run of table rows ("cell | cell") as a sorted list: rows may change
    order within their table, but no line may move past a heading ("Suspended licences") or text."""
    blocks: list[object] = []
    rows: list[str] = []
    for line in map(without_stamps, lines):
        if " | " in line:
            rows.append(line)
            continue
        blocks += [sorted(rows), line] if rows else [line]
        rows = []
    return [*blocks, sorted(rows)] if rows else blocks


def _page_changes(source: Source, previous: Snapshot, current: Snapshot) -> list[Change]:
    old_lines, new_lines = previous.text.splitlines(), current.text.splitlines()
    same_title = fingerprint(previous.title) == fingerprint(current.title)  # "Register - HKMA" / "| HKMA"
    if same_title and _row_blocks(old_lines) == _row_blocks(new_lines):
        # Only a "generated at" stamp moved, or a table's rows came in another order (a register
        # sorted by name instead of date): stored, not a change.
        return []
    lines = list(difflib.unified_diff(old_lines, new_lines, "before", "after", lineterm="", n=2))
    added = tuple(line[1:] for line in lines[2:] if line.startswith("+"))
    removed = tuple(line[1:] for line in lines[2:] if line.startswith("-"))
    title = current.title or source.name or source.id
    if not lines and not same_title:
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
