"""What a round checks before it trusts a changed listing or page, and before it calls an item
removed: a partial answer (a shrink), a changed link format (a turnover), a stale copy served now
and then (an item missing once), and a listing's history coming into view (a page that grew).
Pure but for the log: the store's count of a source's refusals is passed in (`held_back`)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor import listing_moves
from monitor.answers import cut_short, ends_page
from monitor.diff import LISTED_AGAIN
from monitor.errors import LayoutChanged, SuspiciousContent
from monitor.extract import snapshot_hash
from monitor.models import Change, Page, Snapshot, Source
from monitor.normalize import fingerprint

log = logging.getLogger("monitor.guards")

MIN_ITEMS_FOR_TURNOVER = 3
ACCEPT_TURNOVER_AFTER = 3  # a complete turnover seen this many rounds running is real: re-baseline
MIN_ITEMS_FOR_SHRINK = 10  # feeds of the SFC hold 5-10 items: below this, shrinking is normal
MIN_LINES_FOR_SHRINK = 5  # a register's region holds ~10 lines
SHRINK_FACTOR = 5  # a listing left with under a fifth of its items at once looks like a partial answer
# How the two guards' errors start. Only their refusals count towards taking an answer as the new
# normal (an outage before does not), and either's: a feed that shrank and changed its link format
# at once is refused by one, then the other.
SHRINK_REASON = "suspicious: "
TURNOVER_REASON = "none of the "
CUT_REASON = "cut short? "
GUARD_REASONS = (SHRINK_REASON, TURNOVER_REASON, CUT_REASON)
# A failing source is retried every few minutes, so three refusals can be a quarter of an hour: a
# shrunk listing or page (a maintenance notice in the site's template) must also last this long.
SHRINK_HOLD = timedelta(hours=12)
AGAIN = "again:"  # the pending key of an item removed before and listed again once
RETITLED = "retitled:"  # of an item retitled or redated once
HTML_START = re.compile(rb"<html[\s>]", re.I)


def confirmed_removals(
    found: list[Change], missing_before: frozenset[str], at_once: bool = False, undone: Sequence[str] = ()
) -> tuple[list[Change], frozenset[str]]:
    """(the changes to log, the keys missing for the first time). An item is removed only when it
    is missing two rounds running: a CDN or load balancer serving a stale copy now and then would
    otherwise have it "removed" and silently back, again and again. A real withdrawal is alerted
    one poll later. So are a title or date corrected (a stale copy has the old one), a page's lines
    gone with nothing added (a register's licensee), and a page's lines back that its last change
    removed (`undone`: a stale copy of a register "licenses" a firm just struck off)."""
    keyed = [(change, _removal_key(change, undone)) for change in found]
    first_time = frozenset() if at_once else frozenset({key for _, key in keyed if key} - missing_before)
    return [change for change, key in keyed if key not in first_time], first_time


def _removal_key(change: Change, undone: Sequence[str] = ()) -> str:
    """What the next round must find again for `change` to be told: an item missing, listed again
    after its removal, or retitled or redated; a page's lines gone, or lines its last change removed
    back (a stale copy would show any of these once)."""
    if change.kind == "removed":
        return change.item_key
    if change.kind == "changed" and change.before.startswith(LISTED_AGAIN):
        return AGAIN + change.item_key
    if change.kind == "changed" and change.item_key and not change.item_key.startswith("doc:"):
        return f"{RETITLED}{change.item_key}|{fingerprint(change.title)}|{change.date[:10]}"
    if change.kind != "page":
        return ""
    if change.removed and not change.added:
        return _lines_key(change)
    return _lines_key(change) if change.added and set(change.added) <= set(undone) else ""


def _lines_key(change: Change) -> str:
    """A page's lines gone or back: which, as the key the next round finds them by again."""
    lines = "\n".join(change.removed) + "\n+\n" + "\n".join(change.added)
    return "lines:" + hashlib.sha256(lines.encode()).hexdigest()[:16]


def with_missing(snapshot: Snapshot, old: Snapshot | None, keys: frozenset[str]) -> Snapshot:
    """`snapshot` with the items of `old` missing for the first time put back where they were: the
    next round's diff against it finds them missing again (or back), and reads their place right.
    A page's lines missing for the first time: the old page stays, to be diffed against again. An
    item listed again for the first time is left out: the next round finds it listed again, or not."""
    if not keys or old is None:
        return snapshot
    if snapshot.kind == "text":
        return old
    again = {key.removeprefix(AGAIN) for key in keys if key.startswith(AGAIN)}  # not listed yet, to this
    retitled = {key.removeprefix(RETITLED).split("|")[0] for key in keys if key.startswith(RETITLED)}
    before = {item.key: item for item in old.items if item.key in retitled}
    items = [before.get(item.key, item) for item in snapshot.items if item.key not in again]
    items = [item for item in items if item.key not in retitled or item.key in before]
    for index, item in enumerate(old.items):
        if item.key in keys:
            items.insert(min(index, len(items)), item)
    kept = replace(snapshot, items=tuple(items))
    return replace(kept, hash=snapshot_hash(kept))


def without_history(source: Source, old: Snapshot | None, new: Snapshot, found: list[Change]) -> list[Change]:
    kept, history = listing_moves.without_history(old, found, new)
    if history:
        log.warning(
            "%s: %d item%s dated before anything listed before came into view (the listing grew, or "
            "an older one slid in below the others): not alerted",
            source.id,
            history,
            "" if history == 1 else "s",
        )
    return kept


def unless_replaced(
    source: Source, old: Snapshot | None, new: Snapshot, held_back: Callable[[], tuple[int, str]]
) -> Snapshot | None:
    """The snapshot to diff against; refuses a listing that shares no item with the last one.

    Every item "new" at once is what a changed link or markup format looks like, not news. Seen
    ACCEPT_TURNOVER_AFTER rounds running, it is real: the items listed before are found again by
    their titles, so that only the titles not listed before are new (the release published with the
    format change is alerted); a listing whose titles are mostly new becomes a silent new baseline.
    """
    if (
        not old
        or old.kind != "items"
        or len(old.items) < MIN_ITEMS_FOR_TURNOVER
        or not listing_moves.shares_nothing(old, new)
    ):
        return old
    if listing_moves.overflowed(old, new):  # every item new, and newer than all it held: diffed as usual
        log.warning(
            "%s: every item is new and newer than those listed before: more releases than the listing "
            "shows may have come out since the last poll (check the source's next page)",
            source.id,
        )
        return old
    rounds, _ = held_back()
    if rounds < ACCEPT_TURNOVER_AFTER:
        param = listing_moves.volatile_param(old, new)
        hint = (
            f'; the links differ only in their "{param}" parameter: if it changes on every visit '
            f'(a session id), add ignore_params = ["{param}"] to the source'
            if param
            else ""
        )
        raise LayoutChanged(
            f"{TURNOVER_REASON}{len(old.items)} items listed before is listed now "
            f"(layout or link format changed?); the old snapshot is kept{hint}"
        )
    by_title = listing_moves.matched_by_title(old, new)
    if by_title is not None:
        log.warning(
            "%s: every link changed %d rounds running; %d items found again by title",
            source.id,
            rounds,
            len(by_title.items),
        )
        return by_title
    log.warning("%s: listing replaced %d rounds running; new baseline, no alerts", source.id, rounds)
    return None


def refuse_cut_short(
    page: Page, last_body: Callable[[], bytes | None], held_back: Callable[[], tuple[int, str]]
) -> None:
    """A listing or page that stops before `</body>` and `</html>` where its last version had them,
    or mid-text where its last version did not stop so: part of an answer (a server that failed while
    writing it, with a length that fits what it wrote). Diffed, a title cut in two would be "changed"
    and the rows after the cut "removed". A page that never writes its end is read as it is. The old
    snapshot is kept; refused ACCEPT_TURNOVER_AFTER rounds running and for SHRINK_HOLD (a site that
    no longer writes its end), it is read as usual."""
    if ends_page(page.body) or not HTML_START.search(page.body, 0, 4096):  # complete, or not a page
        return
    mid_text, last = cut_short(page.body), last_body()
    if last is None and not mid_text:
        return  # its last version is not kept (pruned): only a cut mid-text is known to be one
    if last is not None and not ends_page(last) and (cut_short(last) or not mid_text):
        return  # its last version did not end either, and not less cleanly: the page's own way
    if mid_text:
        what = "the page stops mid-text, before </body>"
    else:
        what = "the page stops before the </body> its last version had"
    if _held_long_enough(held_back):
        return
    raise SuspiciousContent(f"{CUT_REASON}{what} (a partial answer); the old snapshot is kept")


def _held_long_enough(held_back: Callable[[], tuple[int, str]]) -> bool:
    """Refused ACCEPT_TURNOVER_AFTER rounds running and for SHRINK_HOLD: the new normal."""
    rounds, since = held_back()
    return (
        rounds >= ACCEPT_TURNOVER_AFTER and datetime.fromisoformat(since) <= datetime.now(UTC) - SHRINK_HOLD
    )


def refuse_sudden_shrink(
    source: Source, old: Snapshot | None, new: Snapshot, held_back: Callable[[], tuple[int, str]]
) -> bool:
    """A feed that suddenly holds 1 of its usual 50 items is a partial or broken answer, not news;
    so is a page that keeps 1 of its 20 lines (a maintenance or login page in the same template).

    Diffed, every item newer than the one left would be reported "removed", and the snapshot
    stored would hide the real state. Refused ACCEPT_TURNOVER_AFTER rounds running and for
    SHRINK_HOLD, it is the new normal and is diffed as usual (older items roll off silently): True
    then. Title-filtered sources (a firehose kept to a few items) vary too much for this rule.
    """
    if not old or source.include_titles or source.exclude_titles:
        return False
    if old.kind == "items":
        held, now = len(old.items), len(new.items)
        enough, what = MIN_ITEMS_FOR_SHRINK, f"the listing holds {now} of the {held} items it held before"
        guess = "a partial answer?"
    else:
        lines = set(old.text.splitlines())
        held, now = len(lines), len(lines.intersection(new.text.splitlines()))
        enough, what = MIN_LINES_FOR_SHRINK, f"the page keeps {now} of its {held} lines"
        guess = "a maintenance, login or partial page?"
    if held < enough or now * SHRINK_FACTOR >= held:
        return False
    if _held_long_enough(held_back):
        return True  # taken as the new normal after its hold
    raise SuspiciousContent(f"{SHRINK_REASON}{what} ({guess}); the old snapshot is kept")
