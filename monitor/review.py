"""The change log for people: `log` (table, JSON, CSV) and `show` (one change in full)."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime, time
from typing import TextIO

from monitor.errors import UsageError
from monitor.models import LoggedChange, Snapshot
from monitor.normalize import HKT, clean_text
from monitor.render import hk_time, matched_terms

LOG_COLUMNS = ("id", "detected_at", "regulator", "source_id", "kind", "topics", "title", "link", "date")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def since(value: str) -> str:
    """A Hong Kong calendar day as the UTC instant it starts at (changes are stored in UTC)."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value) if DAY.match(value) else None
    except ValueError:
        day = None
    if day is None:
        raise UsageError(f"--since {value!r}: expected a date like 2026-07-01")
    start = datetime.combine(day, time(), tzinfo=HKT)
    return start.astimezone(UTC).isoformat(timespec="seconds")


def log_row(logged: LoggedChange) -> dict[str, str | int]:
    change = logged.change
    return {
        "id": logged.id,
        "detected_at": logged.detected_at,
        "regulator": logged.regulator,
        "source_id": change.source_id,
        "kind": change.kind,
        "topics": ",".join(change.topics),
        "title": change.title,
        "link": change.link,
        "date": change.date,
    }


def print_log(changes: list[LoggedChange], form: str, out: TextIO) -> None:
    rows = [log_row(c) for c in changes]
    if form == "json":
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif form == "csv":
        writer = csv.DictWriter(out, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(changes, out)


def _print_table(changes: list[LoggedChange], out: TextIO) -> None:
    if not changes:
        out.write("no changes recorded yet\n")
        return
    out.write(f"{'ID':>5}  {'DETECTED (HKT)':<20} {'REG':<5} {'KIND':<8} {'TOPICS':<24} TITLE\n")
    for logged in changes:
        change = logged.change
        topics = ",".join(change.topics) or "-"
        title = clean_text(change.title)[:90]
        out.write(
            f"{logged.id:>5}  {hk_time(logged.detected_at):<20} {logged.regulator:<5} "
            f"{change.kind:<8} {topics:<24} {title}\n"
        )


def print_change(logged: LoggedChange, before: Snapshot | None, out: TextIO) -> None:
    change = logged.change
    fields = [
        ("Change", f"#{logged.id} ({change.kind})"),
        ("Source", change.source_id),
        ("Regulator", logged.regulator),
        ("Title", clean_text(change.title)),
        ("Was", clean_text(change.before)),
        ("Link", change.link),
        ("Date", hk_time(change.date)),
        ("Topics", matched_terms(logged) or "none (logged, not alerted)"),
        ("Detected", hk_time(logged.detected_at)),
        ("Fetched", f"{hk_time(logged.fetched_at)} from {logged.final_url}"),
        ("Raw body", f"sha256 {logged.raw_sha256}"),
        ("Snapshot", f"{logged.old_snapshot or '(none)'} -> {logged.new_snapshot}"),
    ]
    for label, value in fields:
        if value:
            out.write(f"{label + ':':<11}{value}\n")
    if change.text:
        out.write(f"\n{clean_text(change.text)}\n")
    if change.diff:
        out.write(f"\n{change.diff}\n")
    if before and before.kind == "items" and change.kind == "removed":
        out.write("\n(the item was listed in the previous snapshot; it is no longer)\n")
