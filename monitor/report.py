"""The change log as a static HTML site: an index filterable by regulator, topic and state, and one
page per change with its diff, the matched terms highlighted, and the evidence. No server, no
framework; everything from the change log is untrusted and escaped."""

from __future__ import annotations

import re
from collections import Counter
from html import escape
from pathlib import Path

from monitor.models import LoggedChange, Review
from monitor.normalize import clean_text
from monitor.render import KIND_LABEL, hk_time, matched_terms

STYLE = """body{font-family:system-ui,"Noto Sans CJK TC","Microsoft JhengHei","WenQuanYi Zen Hei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.added{background:#e6ffec}.removed{background:#ffebe9}mark{background:#fff3a0}
.evidence{font-family:monospace;font-size:.9em;background:#f6f8fa;padding:1em}.state{font-weight:bold}
select{margin-right:1em}"""
FILTER_SCRIPT = """<script>
function applyFilters(){var f={};document.querySelectorAll('select[data-filter]').forEach(function(s){f[s.dataset.filter]=s.value});
document.querySelectorAll('tr[data-regulator]').forEach(function(r){var show=true;for(var k in f){if(f[k]&&(' '+r.dataset[k]+' ').indexOf(' '+f[k]+' ')<0){show=false}}r.hidden=!show})}
document.querySelectorAll('select[data-filter]').forEach(function(s){s.addEventListener('change',applyFilters)});
</script>"""


def write_report(
    changes: list[LoggedChange], reviews: dict[int, list[Review]], out_dir: Path, generated_at: str
) -> Path:
    pages = out_dir / "changes"
    pages.mkdir(parents=True, exist_ok=True)
    for logged in changes:
        (pages / f"{logged.id}.html").write_text(
            change_page(logged, reviews.get(logged.id, [])), encoding="utf-8"
        )
    index = out_dir / "index.html"
    index.write_text(index_page(changes, generated_at), encoding="utf-8")
    return index


def index_page(changes: list[LoggedChange], generated_at: str) -> str:
    counts = Counter(c.state for c in changes)
    summary = ", ".join(f"{counts[s]} {s}" for s in ("new", "escalated", "reviewed", "dismissed"))
    rows = "\n".join(_index_row(c) for c in changes)
    filters = "".join(
        _select(name, sorted({v for c in changes for v in values(c)}))
        for name, values in (
            ("regulator", lambda c: [c.regulator]),
            ("topic", lambda c: list(c.change.topics)),
            ("state", lambda c: [c.state]),
        )
    )
    body = (
        f"<h1>hk-policy-monitor change log</h1><p>Generated {escape(hk_time(generated_at))}. "
        f"{len(changes)} changes: {summary}.</p><p>{filters}</p>"
        "<table><thead><tr><th>ID</th><th>Detected (HKT)</th><th>Regulator</th><th>Source</th><th>Kind</th>"
        f"<th>Topics</th><th>State</th><th>Title</th></tr></thead><tbody>\n{rows}\n</tbody></table>{FILTER_SCRIPT}"
    )
    return _page("hk-policy-monitor change log", body)


def _index_row(logged: LoggedChange) -> str:
    change = logged.change
    cells = [
        str(logged.id),
        hk_time(logged.detected_at),
        logged.regulator,
        change.source_id,
        change.kind,
        ", ".join(change.topics) or "-",
    ]
    tds = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
    title = f'<a href="changes/{logged.id}.html">{escape(clean_text(change.title))}</a>'
    data = (
        f'data-regulator="{escape(logged.regulator)}" data-topic="{escape(" ".join(change.topics))}" '
        f'data-state="{escape(logged.state)}"'
    )
    return f'<tr {data}>{tds}<td class="state">{escape(logged.state)}</td><td>{title}</td></tr>'


def _select(name: str, options: list[str]) -> str:
    choices = "".join(f'<option value="{escape(o)}">{escape(o)}</option>' for o in options)
    return (
        f'<label>{name} <select data-filter="{name}"><option value="">all</option>{choices}</select></label>'
    )


def change_page(logged: LoggedChange, reviews: list[Review]) -> str:
    change = logged.change
    terms = [term for found in change.matches.values() for term in found]
    history = "".join(
        f"<li>{escape(hk_time(r.at))}: <b>{escape(r.state)}</b> by {escape(r.by or 'unknown')}"
        + (f" — {escape(r.note)}" if r.note else "")
        + "</li>"
        for r in reviews
    )
    facts = [
        ("Regulator", escape(logged.regulator)),
        ("Source", escape(change.source_id)),
        ("Kind", escape(KIND_LABEL.get(change.kind, change.kind))),
        ("State", f'<span class="state">{escape(logged.state)}</span>'),
        ("Date", escape(hk_time(change.date))),
        ("Original", _link(change.link)),
        ("Topics", highlight(matched_terms(logged), []) or "none"),
        ("Was", highlight(change.before, terms)),
    ]
    rows = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts if value)
    body = (
        f'<p><a href="../index.html">← change log</a></p><h1>{highlight(change.title, terms)}</h1>'
        f"<table>{rows}</table>"
        + (f"<p>{highlight(change.text, terms)}</p>" if change.text else "")
        + _diff(logged, terms)
        + (
            f"<h2>Review history</h2><ul>{history}</ul>"
            if history
            else "<h2>Review history</h2><p>Not reviewed yet.</p>"
        )
        + _evidence(logged)
    )
    return _page(f"#{logged.id} {clean_text(change.title)}", body)


def _diff(logged: LoggedChange, terms: list[str]) -> str:
    change = logged.change
    if not (change.added or change.removed):
        return ""
    lines = [f'<div class="added">+ {highlight(line, terms)}</div>' for line in change.added]
    lines += [f'<div class="removed">− {highlight(line, terms)}</div>' for line in change.removed]
    return "<h2>What changed on the page</h2>" + "".join(lines)


def _evidence(logged: LoggedChange) -> str:
    headers = "".join(f"<br>{escape(k)}: {escape(v)}" for k, v in logged.headers.items())
    items = [
        f"Final URL: {_link(logged.final_url)}",
        f"Fetched: {escape(hk_time(logged.fetched_at))} ({escape(logged.fetched_at)} UTC)",
        f"HTTP status: {logged.http_status}{headers}",
        f"Raw body sha256 (after): {escape(logged.raw_sha256)}",
        f"Raw body sha256 (before): {escape(logged.old_raw_sha256 or '(first fetch)')}",
        f"Snapshots: {escape(logged.old_snapshot or '(none)')} → {escape(logged.new_snapshot)}",
        f"Detected: {escape(hk_time(logged.detected_at))}",
    ]
    return '<h2>Evidence</h2><div class="evidence">' + "<br>".join(items) + "</div>"


def highlight(text: str, terms: list[str]) -> str:
    """Escaped text with the matched terms in <mark> (case-insensitive; Chinese terms too)."""
    text = clean_text(text)
    if not text:
        return ""
    if not terms:
        return escape(text)
    pattern = re.compile("|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True)), re.I)
    out, last = [], 0
    for match in pattern.finditer(text):
        out += [escape(text[last : match.start()]), f"<mark>{escape(match.group())}</mark>"]
        last = match.end()
    return "".join([*out, escape(text[last:])])


def _link(url: str) -> str:
    url = clean_text(url)
    if url.startswith(("http://", "https://")):
        return f'<a href="{escape(url, quote=True)}" rel="noopener noreferrer">{escape(url)}</a>'
    return escape(url)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
