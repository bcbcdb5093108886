"""Item identity: guid/reference number, else normalised link, else link + title."""

from __future__ import annotations

from collections import defaultdict

from monitor.models import Item
from monitor.normalize import fingerprint, normalize_link


def item_key(guid: str, link: str, title: str, ignore_params: tuple[str, ...] = ()) -> str:
    """`ignore_params`: the source's (Source.ignore_params)."""
    guid = guid.strip()
    if guid.startswith(("http://", "https://")):
        return "link:" + normalize_link(guid, ignore_params)
    if guid:
        return "id:" + guid
    if link:
        return "link:" + normalize_link(link, ignore_params)
    return "title:" + fingerprint(title)


def unique_items(items: list[Item]) -> tuple[Item, ...]:
    """Drop repeats; give items that share a link but differ in title a key of link + title.

    HKMA's LegCo feed gives every item the same link, so the link alone cannot be the identity
    there; but HKMA also lists one circular twice with 'A.I.' and 'AI' in its title, which is one
    item. Titles are compared by fingerprint, so the second case stays one item. One reference
    number with one link under two titles is one release listed twice (the SFC's Chinese API lists
    a new release under its English and its Chinese title): the first is kept.
    """
    by_key: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_key[item.key].append(item)
    result: list[Item] = []
    seen: set[str] = set()
    for item in items:
        group = by_key[item.key]
        distinct = (
            len(group) > 1 and len({fingerprint(i.title) for i in group}) > 1 and not _one_release(group)
        )
        key = f"{item.key}|{fingerprint(item.title)}" if distinct else item.key
        if key not in seen:
            seen.add(key)
            result.append(item if key == item.key else Item(key, item.title, item.link, item.date, item.text))
    return tuple(result)


def _one_release(group: list[Item]) -> bool:
    return group[0].key.startswith("id:") and len({normalize_link(i.link) for i in group}) == 1
