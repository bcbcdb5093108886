"""The change log for people: `log` (table, JSON, CSV), `export`, `show` (one change in full)."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TextIO

from monitor.errors import OutputError, UsageError
from monitor.models import NOT_FETCHED, PARTLY_READ, READ_LATER, Change, ChangeFilter, LoggedChange, Review
from monitor.normalize import HKT, clean_text, one_line, printable
from monitor.render import hk_time, matched_terms, repeat_mark, repeat_note, seen_in, was_text

# Stable column names for scripts (documented in the README); add at the end, never rename.
COLUMNS = ("id", "detected_at", "regulator", "source_id", "kind", "topics", "state", "title", "link", "date")
EXPORT_COLUMNS = (
    *COLUMNS,
    "matched_terms",
    "fetched_at",
    "final_url",
    "raw_sha256",
    "reviewed_by",
    "review_note",
    "duplicate_of",
)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what Excel reads a cell as a formula by


def hk_day_start(value: str, option: str) -> str:
    """A Hong Kong calendar day as the UTC instant it starts at (changes are stored in UTC)."""
    if not value:
        return ""
    try:
        day = date.fromisoformat(value) if DAY.match(value) else None
    except ValueError:
        day = None
    if day is None:
        raise UsageError(f"{option} {value!r}: expected a date like 2026-07-01")
    return datetime.combine(day, time(), tzinfo=HKT).astimezone(UTC).isoformat(timespec="seconds")


def change_filter(args: argparse.Namespace, known: dict[str, set[str]] | None = None) -> ChangeFilter:
    """The filters of `log`, `export` and `report`. A `--source`, `--regulator` or `--topic` that
    names nothing `known` is an error: a typo would otherwise read as "nothing happened"."""
    for option, value in (
        ("--source", args.source),
        ("--regulator", args.regulator),
        ("--topic", args.topic),
    ):
        names = (known or {}).get(option)
        if value and names is not None and value.lower() not in {n.lower() for n in names}:
            raise UsageError(f"{option} {value!r}: {_none_such(option, sorted(names, key=str.lower))}")
    since, until = hk_day_start(args.since, "--since"), hk_day_start(args.until, "--until")
    if since and until and until <= since:  # an empty log would read as "nothing happened"
        raise UsageError(f"--until {args.until} is not after --since {args.since} (--until is exclusive)")
    return ChangeFilter(
        source_id=args.source or "",
        regulator=args.regulator or "",
        topic=args.topic or "",
        state=args.state,
        since=since,
        until=until,
        limit=args.limit,
    )


def _none_such(option: str, names: list[str]) -> str:
    what = {"--source": "source", "--regulator": "regulator", "--topic": "topic"}[option]
    if not names:
        return f"no {what} is known yet (run a round first)"
    shown = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return f"no such {what} (known: {shown})"


def log_row(logged: LoggedChange) -> dict[str, str | int]:
    change = logged.change
    return {
        "id": logged.id,
        "detected_at": logged.detected_at,
        "regulator": logged.regulator,
        "source_id": change.source_id,
        "kind": change.kind,
        "topics": ",".join(change.topics),
        "state": logged.state,
        "title": change.title,
        "link": change.link,
        "date": change.date,
    }


def print_log(changes: list[LoggedChange], form: str, out: TextIO, recorded: bool = True) -> None:
    """`recorded`: the log holds changes, if not these (the filters matched none of them)."""
    rows = [log_row(c) for c in changes]
    if form == "json":
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif form == "csv":
        _write_csv(rows, COLUMNS, out)
    elif not changes:
        out.write(
            "no change matches these filters (`policy-monitor log` lists every change)\n"
            if recorded
            else "no changes recorded yet\n"
        )
    elif out.isatty():
        _print_rich(changes, out)
    else:
        _print_plain(changes, out)


def export(
    changes: list[LoggedChange],
    form: str,
    out: TextIO,
    reviews: dict[int, list[Review]] | None = None,
    excel: bool = False,
) -> None:
    """`excel`: a CSV for opening in Excel, which reads a file without a byte-order mark in the
    computer's legacy code page (Chinese titles garbled) and runs a cell starting with = + - @ as a
    formula (a title is scraped text): such cells start with an apostrophe, as Excel's own quoting."""
    rows = [
        {
            **log_row(c),
            "matched_terms": matched_terms(c),
            "fetched_at": c.fetched_at,
            "final_url": c.final_url,
            "raw_sha256": c.raw_sha256,
            "reviewed_by": "",
            "review_note": "",
            "duplicate_of": c.duplicate_of or "",
        }
        for c in changes
    ]
    for row in rows:
        history = (reviews or {}).get(int(row["id"]), [])
        if history:
            row["reviewed_by"], row["review_note"] = history[-1].by, history[-1].note
    if form == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif excel:
        out.write("\ufeff")
        _write_csv([{k: _inert(v) for k, v in row.items()} for row in rows], EXPORT_COLUMNS, out)
    else:
        _write_csv(rows, EXPORT_COLUMNS, out)


def _inert(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _write_csv(rows: list[dict], columns: tuple[str, ...], out: TextIO) -> None:
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def _print_plain(changes: list[LoggedChange], out: TextIO) -> None:
    # as wide as the longest topic list: a title pushed out of its column is hard to scan for
    wide = max([24, *(len(",".join(c.change.topics)) for c in changes)])
    out.write(
        f"{'ID':>5}  {'DETECTED (HKT)':<20} {'REG':<5} {'KIND':<8} {'STATE':<10} {'TOPICS':<{wide}} TITLE\n"
    )
    for logged in changes:
        change = logged.change
        topics = ",".join(change.topics) or "-"
        out.write(
            f"{logged.id:>5}  {hk_time(logged.detected_at):<20} {logged.regulator:<5} "
            f"{change.kind:<8} {logged.state:<10} {topics:<{wide}} {_listed_title(logged)}\n"
        )


def _print_rich(changes: list[LoggedChange], out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "Detected (HKT)", "Reg", "Kind", "State", "Topics", title="Change log")
    # Chinese titles have no spaces to wrap at: folded, they wrap like English instead of being cut.
    table.add_column("Title", overflow="fold")
    for logged in changes:
        change = logged.change
        table.add_row(
            str(logged.id),
            hk_time(logged.detected_at),
            logged.regulator,
            change.kind,
            logged.state,
            ", ".join(change.topics) or "-",
            _listed_title(logged),
        )
    Console(file=out).print(table, markup=False, emoji=False)  # scraped titles: never rich markup or :codes:


def _listed_title(logged: LoggedChange) -> str:
    """A title in the log's table; a repeat of a release names the change that alerted for it."""
    return repeat_mark(logged) + clean_text(logged.change.title)


def print_change(logged: LoggedChange, reviews: list[Review], out: TextIO) -> None:
    change = logged.change
    headers = ", ".join(f"{k}: {v}" for k, v in logged.headers.items())
    fields = [
        ("Change", f"#{logged.id} ({change.kind})"),
        ("State", logged.state),
        ("Source", change.source_id),
        ("Regulator", logged.regulator),
        ("Title", clean_text(change.title)),
        ("Was", clean_text(was_text(change.before))),
        ("Link", change.link),
        ("Date", hk_time(change.date)),
        ("Topics", matched_terms(logged) or "none (logged, not alerted)"),
        ("Text", _text_read(change)),
        ("Repeat", repeat_note(logged)),
        ("Also in", ", ".join(label for label, _ in seen_in(logged))),
        ("Detected", hk_time(logged.detected_at)),
        ("Fetched", f"{hk_time(logged.fetched_at)} ({logged.fetched_at} UTC) from {logged.final_url}"),
        ("HTTP", f"{logged.http_status} {clean_text(headers)}".strip()),
        (
            "Raw body",
            f"sha256 {logged.raw_sha256}"
            + (f" (before: {logged.old_raw_sha256})" if logged.old_raw_sha256 else ""),
        ),
        ("Snapshot", f"{logged.old_snapshot or '(none)'} -> {logged.new_snapshot}"),
    ]
    for label, value in fields:
        if value:
            out.write(f"{label + ':':<11}{one_line(value)}\n")
    for entry in reviews:
        note = f": {clean_text(entry.note)}" if entry.note else ""
        out.write(f"{'Review:':<11}{hk_time(entry.at)} {entry.state} by {entry.by or 'unknown'}{note}\n")
    if change.text:
        out.write(f"\n{clean_text(change.text)}\n")
    if change.diff:
        out.write(f"\n{printable(change.diff)}\n")


def _text_read(change: Change) -> str:
    """Whether the item's own text (detail page, PDFs) was read, and from where: what its topics
    rest on."""
    status = change.body_status
    if status.startswith(NOT_FETCHED):
        return f"{status}: classified on its title alone"
    if status.startswith(PARTLY_READ):
        return f"{status}: classified on its title and {change.documents[0] if change.documents else 'detail page'}"
    if not status:
        return ""
    when = " on a later round" if status == READ_LATER else ""
    return f"read{when} from {', '.join(change.documents)}" if change.documents else status


def write_raw(logged: LoggedChange, side: str, body: bytes | None, path: str) -> None:
    """The exact bytes the regulator served, to a file or to stdout, unchanged."""
    if body is None:
        what = (
            "no earlier version (the change came from the first fetch)"
            if side == "before"
            else "pruned or never stored"
        )
        raise UsageError(f"change {logged.id}: the raw body {side} is not available: {what}")
    if path:
        try:
            Path(path).write_bytes(body)
        except OSError as exc:
            wants = "--out names the file to write the raw bytes to, in a folder that exists"
            raise OutputError(path, exc, wants) from exc
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
