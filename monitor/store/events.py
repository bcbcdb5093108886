"""When two changes from different sources are one release: the keys the change log matches on."""

from __future__ import annotations

import re
import unicodedata

from monitor.diff import LISTED_AGAIN
from monitor.models import Change
from monitor.normalize import CJK

PDF_SIZE_SUFFIX = re.compile(r"\s*[(（]\s*(?:PDF File|PDF\s*檔案|PDF\s*文件)[^)）]*[)）]\s*$", re.I)
# Shorter titles ("Speech", "LCQ1", "立法會一題") are too generic to say two items are one; a Chinese
# character counts twice ("批出穩定幣發行人牌照" says as much as "Granting of stablecoin licences").
MIN_TITLE_KEY = 16
# The language segments of the regulators' URLs: /eng/ and /chi/ (HKMA), /en/ and /tc/ (SFC),
# lang=en|tc (APIs). The same release in English and Chinese differs only there.
LANGUAGE_SEGMENT = re.compile(r"/(?:eng|chi|en|tc|sc|zh)(?=/)|(?<=[?&])lang=(?:en|tc|sc|zh)", re.I)


def title_key(title: str) -> str:
    """A title reduced to what two sources of one release share: case, spacing, punctuation and
    the HKMA's " (PDF File, 131.0 KB)" suffix do not count."""
    text = unicodedata.normalize("NFKC", PDF_SIZE_SUFFIX.sub("", title)).casefold()
    key = "".join(ch for ch in text if ch.isalnum())
    return key if len(key) + len(CJK.findall(key)) >= MIN_TITLE_KEY else ""


def link_key(link: str) -> str:
    """A link without its language: the HKMA's /eng/ and /chi/ pages of one release are one."""
    if not link:
        return ""
    bare = re.sub(r"^https?://", "", link.strip()).rstrip("/")
    return LANGUAGE_SEGMENT.sub("", bare).lower()


def release_keys(change: Change) -> tuple[str, str, str]:
    """What makes two items from different sources one release (their NEW, or their correction or
    withdrawal seen through each: one event, one alert): the same identity (the SFC's
    feed and its API; English and Chinese under one reference number; the HKMA's feed and its API,
    by link), the same link but for its language (the HKMA's /eng/ and /chi/ pages) or the same
    title (an HKMA release re-issued on info.gov.hk "on behalf of the HKMA"). As (item key, title
    key, link key), each '' when it says nothing; all '' for a page change."""
    if change.kind not in ("new", "changed", "removed"):
        return "", "", ""
    by_key = change.item_key if change.item_key.startswith(("id:", "link:")) else ""
    return by_key, title_key(change.title), link_key(change.link)


def same_event(before: str, other: str) -> bool:
    """Two `changed` changes of one release are one event (a correction seen through its feed and its
    API) unless one is its return after a removal and the other a correction."""
    return before.startswith(LISTED_AGAIN) == other.startswith(LISTED_AGAIN)


def other_reference(key: str, other: str) -> bool:
    """Whether two item keys are reference numbers of one kind that differ: the SFC's 26PR129 and
    26PR131 are two releases, whatever their titles share ("SFC warns public of suspicious ...").
    An HKMA number and a Government one (20260415-4, P2026041500512) are of two kinds: one release
    may carry both."""
    if not (key.startswith("id:") and other.startswith("id:")) or key == other:
        return False
    return _shape(key) == _shape(other)


def _shape(key: str) -> str:
    return re.sub(r"[A-Za-z]+", "A", re.sub(r"\d+", "9", key))  # 26PR9 and 26PR131: one kind
