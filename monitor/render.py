"""LoggedChange -> readable text for the console. Everything scraped is cleaned of control codes."""

from __future__ import annotations

import re
from datetime import datetime

from monitor.models import NOT_FETCHED, PARTLY_READ, READ_LATER, LoggedChange
from monitor.normalize import HKT, clean_text

MAX_DIFF_LINES = 12
MAX_LINE = 240
KIND_LABEL = {"new": "NEW", "changed": "CHANGED", "removed": "REMOVED", "page": "PAGE CHANGED"}
# The old title and date of a changed item as diff stores it: "Title (2026-07-30T16:21:33+08:00)".
WAS_DATE = re.compile(r"^(?P<title>.*) \((?P<date>\d{4}-\d{2}-\d{2}[^()]*)\)$", re.DOTALL)


def hk_time(iso: str) -> str:
    """An ISO timestamp shown in Hong Kong time; a bare date stays a date.

    A time without a zone ("2026-08-01 17:05") is Hong Kong time, as the regulators here write
    it, not the time zone of the host the monitor happens to run on."""
    if len(iso) <= 10:
        return iso
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return clean_text(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=HKT)
    return moment.astimezone(HKT).strftime("%Y-%m-%d %H:%M HKT")


def was_text(before: str) -> str:
    """What a changed item was: its old title, and its old date in Hong Kong time like "Date:"."""
    match = WAS_DATE.match(before)
    return f"{match['title']} ({hk_time(match['date'])})" if match else before


def matched_terms(logged: LoggedChange) -> str:
    return "; ".join(f"{topic} ({', '.join(terms)})" for topic, terms in logged.change.matches.items())


def seen_in(logged: LoggedChange) -> list[tuple[str, str]]:
    """(label, link) of every other source the same release was seen through; the label names the
    source and its language ("sfc-news-api-tc, Chinese")."""
    return [(_source_label(s.source_id, s.language), s.link) for s in logged.seen_in]


def repeat_note(logged: LoggedChange, first: str = "") -> str:
    """For a reviewer: a copy of a release that alerted through another source sent no alert.
    `first`: how to name the change that alerted (the report links it); "change #N" by default."""
    if not logged.duplicate_of:
        return ""
    return f"of {first or f'change #{logged.duplicate_of}'}, which alerted for this release; this copy sent no alert"


def repeat_mark(logged: LoggedChange) -> str:
    """Before a title in a list of changes: "[repeat of #12] " for a copy that sent no alert."""
    return f"[repeat of #{logged.duplicate_of}] " if logged.duplicate_of else ""


REMOVED_NOTE = "no longer listed by the source: withdrawn, or moved (the link may still work)"


def alert_note(logged: LoggedChange) -> str:
    """What the reader should know to read the alert right: what "removed" means; that it rests
    on its title alone, when the item's text could not be fetched."""
    change = logged.change
    if change.kind == "removed":
        return REMOVED_NOTE
    status = change.body_status
    if status == READ_LATER:  # its first round could not read it: the alert comes later than its detection
        return "alerted late: its text could be read only on a later round"
    if status.startswith(PARTLY_READ):
        return status
    return f"body not fetched ({status.removeprefix(NOT_FETCHED)})" if status.startswith(NOT_FETCHED) else ""


def _source_label(source_id: str, language: str) -> str:
    name = {"en": "English", "zh": "Chinese"}.get(language, "")
    return f"{source_id}, {name}" if name else source_id


def render_text(logged: LoggedChange) -> str:
    change = logged.change
    topics = ", ".join(change.topics) or "no topic"
    lines = [
        f"== {logged.regulator} · {topics} " + "=" * max(4, 60 - len(logged.regulator) - len(topics)),
        f"{KIND_LABEL.get(change.kind, change.kind.upper())}: {_clip(change.title)}",
    ]
    if change.before:
        lines.append(f"Was:     {_clip(was_text(change.before))}")
    if change.date:
        lines.append(f"Date:    {hk_time(change.date)}")
    if change.link:
        lines.append(f"Link:    {clean_text(change.link)}")
    for label, link in seen_in(logged):
        lines.append(f"Also:    {clean_text(link)} ({clean_text(label)})")
    if change.matches:
        lines.append(f"Matched: {matched_terms(logged)}")
    if note := alert_note(logged):
        lines.append(f"Note:    {_clip(note)}")
    lines += _diff_lines("+", change.added) + _diff_lines("-", change.removed)
    lines.append(
        f"Source:  {change.source_id} · {f'change #{logged.id}' if logged.id else 'dry run, not stored'}"
        f" · detected {hk_time(logged.detected_at)}"
    )
    return "\n".join(lines)


def _diff_lines(sign: str, lines: tuple[str, ...]) -> list[str]:
    shown = [f"  {sign} {_clip(line)}" for line in lines[:MAX_DIFF_LINES]]
    if len(lines) > MAX_DIFF_LINES:
        shown.append(f"  {sign} … {len(lines) - MAX_DIFF_LINES} more lines (policy-monitor show)")
    return shown


def _clip(text: str) -> str:
    text = clean_text(text)
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"
