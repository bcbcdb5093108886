"""The change log as a static HTML site: an index filterable by regulator, topic and state, and one
page per change with its diff, the matched terms highlighted, and the evidence. No server, no
framework, no external assets. Everything from the change log is untrusted and escaped."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Container
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from monitor.errors import OutputError
from monitor.models import LoggedChange, Review
from monitor.normalize import clean_text
from monitor.render import KIND_LABEL, hk_time, matched_terms, repeat_mark, repeat_note, seen_in, was_text

STATES = ("new", "escalated", "reviewed", "dismissed")
CHANGE_PAGE = re.compile(r"\d+\.html")  # what write_report names a change's page
FILTERS = ("regulator", "topic", "state")
CJK = re.compile(r"[\u3000-\u9fff\uf900-\ufaff\uff00-\uffef]")
STYLE = """body{font-family:system-ui,"Noto Sans CJK TC","WenQuanYi Zen Hei","Microsoft JhengHei",sans-serif;
margin:2em;color:#222;max-width:80em}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:baseline}
.facts th,.evidence th{width:14em}
mark{background:#fff3a0}.state{font-weight:bold}select{margin-right:1em}
.diff{font-family:monospace;white-space:pre-wrap;border:1px solid #ddd}.diff div{padding:0 .5em}
.added{background:#e6ffec;color:#055d20}.removed{background:#ffebe9;color:#82071e}.hunk{color:#777}
.evidence td{font-family:monospace;word-break:break-all}"""
# Filters are progressive: without JavaScript the controls stay hidden and every change is listed.
# ?state=new&regulator=SFC in the address preselects filters, so a reviewer's inbox is a bookmark; a
# value no change has yet (an empty inbox) is added, so that it shows nothing rather than everything.
FILTER_JS = """var sel=document.querySelectorAll('select[data-filter]'),q=new URLSearchParams(location.search);
function applyFilters(){var n=0;document.querySelectorAll('tbody tr').forEach(function(r){var ok=true;
sel.forEach(function(s){if(s.value&&r.dataset[s.dataset.filter].split('|').indexOf(s.value)<0)ok=false});
r.hidden=!ok;n+=ok?1:0});document.getElementById('shown').textContent=n+' shown'}
function preselect(s,v){var o=Array.prototype.find.call(s.options,function(o){return o.value.toLowerCase()==v.toLowerCase()});
if(!o){o=document.createElement('option');o.value=o.textContent=v;s.add(o)}s.value=o.value}
sel.forEach(function(s){if(q.get(s.dataset.filter))preselect(s,q.get(s.dataset.filter));
s.addEventListener('change',applyFilters)});document.getElementById('filters').hidden=false;applyFilters();"""
# Defence in depth: even if something slipped past escaping, only our own script may run.
SCRIPT_HASH = base64.b64encode(hashlib.sha256(FILTER_JS.encode()).digest()).decode()


def write_report(
    changes: list[LoggedChange], reviews: dict[int, list[Review]], out_dir: Path, generated_at: str
) -> Path:
    """Write index.html and changes/<id>.html into out_dir (created); return the index's path."""
    pages = out_dir / "changes"
    try:
        pages.mkdir(parents=True, exist_ok=True)
        in_report = {logged.id for logged in changes}
        for logged in changes:
            page = change_page(logged, reviews.get(logged.id, []), in_report)
            (pages / f"{logged.id}.html").write_text(page, encoding="utf-8")
        for old in pages.glob("*.html"):  # an earlier report's pages outside these filters
            if CHANGE_PAGE.fullmatch(old.name) and int(old.stem) not in in_report:
                old.unlink()
        index = out_dir / "index.html"
        index.write_text(index_page(changes, generated_at), encoding="utf-8")
    except OSError as exc:
        raise OutputError(
            out_dir, exc, "--out names the folder to write index.html and changes/ into"
        ) from exc
    return index


def index_page(changes: list[LoggedChange], generated_at: str) -> str:
    # By id, the order changes were logged in, as `log` shows them: a clock that stepped back
    # gives a later change an earlier detected_at.
    newest_first = sorted(changes, key=lambda c: c.id, reverse=True)
    rows = "\n".join(_index_row(c) for c in newest_first)
    head = "".join(f"<th>{h}</th>" for h in ("ID", "Detected (HKT)", "Regulator", "Source", "Kind"))
    head += "<th>Topics</th><th>State</th><th>Title</th>"
    body = (
        f"<h1>hk-policy-monitor change log</h1><p>Generated {escape(hk_time(generated_at))}.</p>"
        f"<p>{len(changes)} changes: {_counts(changes)}.</p>{_filters(changes)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"
        f"<script>{FILTER_JS}</script>"
    )
    return _page("hk-policy-monitor change log", body, f"'sha256-{SCRIPT_HASH}'")


def _counts(changes: list[LoggedChange]) -> str:
    counts = Counter(c.state for c in changes)
    states = [*STATES, *sorted(set(counts) - set(STATES))]
    return ", ".join(f'<span class="count-{escape(s)}">{counts[s]} {escape(s)}</span>' for s in states)


def _filters(changes: list[LoggedChange]) -> str:
    values = {
        "regulator": {c.regulator for c in changes},
        "topic": {t for c in changes for t in c.change.topics},
        "state": {c.state for c in changes},
    }
    selects = "".join(_select(name, sorted(values[name])) for name in FILTERS)
    return f'<p id="filters" hidden>{selects}<span id="shown"></span></p>'


def _select(name: str, options: list[str]) -> str:
    choices = "".join(f'<option value="{escape(o)}">{escape(o)}</option>' for o in options)
    return (
        f'<label>{name} <select data-filter="{name}"><option value="">all</option>{choices}</select></label>'
    )


def _index_row(logged: LoggedChange) -> str:
    change = logged.change
    cells = [str(logged.id), hk_time(logged.detected_at), logged.regulator, change.source_id, change.kind]
    cells.append(", ".join(change.topics) or "-")
    tds = "".join(f"<td>{escape(clean_text(cell))}</td>" for cell in cells)
    title = _title(change.title)
    link = (
        f'{escape(repeat_mark(logged))}<a href="changes/{logged.id}.html"{_lang(title)}>{escape(title)}</a>'
    )
    data = {"regulator": logged.regulator, "topic": "|".join(change.topics), "state": logged.state}
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
    return f'<tr{attrs}>{tds}<td class="state">{escape(logged.state)}</td><td>{link}</td></tr>'


def change_page(logged: LoggedChange, reviews: list[Review], in_report: Container[int] = ()) -> str:
    """`in_report`: the changes with a page of this report, which a page may link."""
    change = logged.change
    terms = [term for found in change.matches.values() for term in found]
    title = _title(change.title)
    facts = [
        ("Regulator", escape(logged.regulator)),
        ("Source", escape(change.source_id)),
        ("Kind", escape(KIND_LABEL.get(change.kind, change.kind))),
        ("State", f'<span class="state">{escape(logged.state)}</span>'),
        ("Date", escape(hk_time(change.date))),
        ("Original", _link(change.link)),
        ("Topics", highlight(matched_terms(logged) or ", ".join(change.topics), terms) or "none"),
        ("Was", highlight(was_text(change.before), terms)),
        ("Repeat", _repeat(logged, in_report)),
        ("Also in", escape(", ".join(label for label, _ in seen_in(logged)))),
        ("Detected", escape(hk_time(logged.detected_at))),
    ]
    text = f"<p{_lang(change.text)}>{highlight(change.text, terms)}</p>" if change.text.strip() else ""
    body = (
        f'<p><a href="../index.html">← change log</a></p>'
        f"<h1{_lang(title)}>#{logged.id} {highlight(title, terms)}</h1>"
        f"{_table(facts)}{text}{_diff(change.diff, change.added, change.removed, terms)}"
        f"{_history(reviews)}{_evidence(logged)}"
    )
    return _page(f"#{logged.id} {title}", body, "'none'")


def _repeat(logged: LoggedChange, in_report: Container[int]) -> str:
    first = logged.duplicate_of
    return repeat_note(logged, f'<a href="{first}.html">change #{first}</a>' if first in in_report else "")


def _history(reviews: list[Review]) -> str:
    if not reviews:
        return "<h2>Review history</h2><p>Not reviewed yet.</p>"
    entries = "".join(
        f"<li>{escape(hk_time(r.at))}: <b>{escape(r.state)}</b> by {escape(r.by or 'unknown')}"
        + (f" — {escape(clean_text(r.note))}" if r.note.strip() else "")
        + "</li>"
        for r in reviews
    )
    return f'<h2>Review history</h2><ol class="history">{entries}</ol>'


def _diff(diff: str, added: tuple[str, ...], removed: tuple[str, ...], terms: list[str]) -> str:
    """The unified diff inline, each line classed; without one, the added and removed lines."""
    if diff.strip():
        body = diff.splitlines()
        if body[:1] and body[0].startswith("--- ") and body[1:2] and body[1].startswith("+++ "):
            body = body[2:]  # the file names; a changed line may start "--" or "++" too
        lines = [_diff_line(line, terms) for line in body]
    else:
        lines = [_diff_line(f"+{line}", terms) for line in added]
        lines += [_diff_line(f"-{line}", terms) for line in removed]
    if not lines:
        return ""
    return f'<h2>What changed on the page</h2><div class="diff">{"".join(lines)}</div>'


def _diff_line(line: str, terms: list[str]) -> str:
    sign, rest = line[:1], line[1:]
    if sign == "@":
        return f'<div class="hunk">{escape(clean_text(line))}</div>'
    css = {"+": ' class="added"', "-": ' class="removed"'}.get(sign, "")
    shown = {"+": "+ ", "-": "− "}.get(sign, "  ")
    return f"<div{css}{_lang(rest)}>{shown}{highlight(rest, terms)}</div>"


def _evidence(logged: LoggedChange) -> str:
    # fetch keeps only the headers that matter as evidence (content-type, etag, last-modified, date ...)
    headers = "<br>".join(f"{escape(k)}: {escape(str(v))}" for k, v in sorted(logged.headers.items()))
    rows = [
        ("Final URL", _link(logged.final_url)),
        ("Fetched", f"{escape(hk_time(logged.fetched_at))} ({escape(_utc(logged.fetched_at))})"),
        ("HTTP status", escape(str(logged.http_status or "unknown"))),
        ("Headers", headers or "none kept"),
        ("Raw body sha256 (after)", escape(logged.raw_sha256 or "not kept")),
        ("Raw body sha256 (before)", escape(logged.old_raw_sha256 or "none (first version)")),
        ("Snapshot (before)", escape(logged.old_snapshot or "none")),
        ("Snapshot (after)", escape(logged.new_snapshot or "none")),
    ]
    return f"<h2>Evidence</h2>{_table(rows, 'evidence')}"


def _table(rows: list[tuple[str, str]], css: str = "facts") -> str:
    """Label/value rows (values already escaped); empty values are left out."""
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows if v)
    return f'<table class="{css}">{cells}</table>'


def highlight(text: str, terms: list[str]) -> str:
    """Escaped text with the matched terms in <mark> (case-insensitive; Chinese terms too)."""
    text = clean_text(text)
    terms = sorted({t for t in terms if t.strip()}, key=len, reverse=True)  # longest wins
    if not text or not terms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [escape(text[last : match.start()]), f"<mark>{escape(match.group())}</mark>"]
        last = match.end()
    return "".join([*out, escape(text[last:])])


def _link(url: str) -> str:
    """Only http(s) addresses become links; anything else (javascript:, data:) is shown as text."""
    url = clean_text(url)
    if re.match(r"https?://", url, re.IGNORECASE):
        return f'<a href="{escape(url)}" rel="noopener noreferrer">{escape(url)}</a>'
    return escape(url)


def _title(title: str) -> str:
    return clean_text(title) or "(untitled)"


def _lang(text: str) -> str:
    """Chinese text is marked zh-HK so browsers pick Traditional Chinese glyphs."""
    return ' lang="zh-HK"' if CJK.search(text) else ""


def _utc(iso: str) -> str:
    """The exact instant in UTC, to the second (a naive timestamp is taken as UTC, as stored)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return clean_text(iso) or "unknown"
    return (
        (moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        .astimezone(UTC)
        .strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def _page(title: str, body: str, script_src: str) -> str:
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src {script_src}; base-uri 'none'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
