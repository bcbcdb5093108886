"""LoggedChange -> Telegram HTML, and any message -> parts within Telegram's length limit. Pure.

Telegram's rules (https://core.telegram.org/bots/api#html-style and #sendmessage):
- only a few tags (b, i, a, code, pre, ...); `&`, `<`, `>` in text must be escaped, and the only
  named entities understood are &lt; &gt; &amp; &quot; (numeric ones work too);
- a message is at most 4,096 characters of text *after* entity parsing, counted in UTF-16 code
  units (an emoji outside the BMP counts twice, a Chinese character once).

Every line built here is self-contained HTML (no tag spans a line break), so a message can be cut
at any line break and each part is still valid on its own. Lines between blank lines (a digest's
entry: its header and its title) are cut apart only when they would not fit in one part.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

from monitor.models import Change, LoggedChange
from monitor.normalize import clean_text
from monitor.render import KIND_LABEL, alert_note, hk_time, matched_terms, seen_in, was_text

__all__ = ["alert_html", "digest_html", "plain_text", "split_message", "split_plain"]

MAX_MESSAGE = 4096  # UTF-16 code units of visible text
MAX_LINE = 300  # characters of one scraped line (title, diff line) before it is clipped
MAX_DIFF_LINES = 20  # added and removed lines shown each; `policy-monitor show` has them all
MIN_LIMIT = 32  # room for a "(12/34) " prefix and some text
MAX_DIGEST_ENTRIES = 50  # ~3 messages
MINUS = "\u2212"  # "−", which does not read as a list bullet the way "-" does

# A tag, allowing '>' inside a quoted attribute value (Telegram's parser allows it).
TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
# The entities tdlib decodes: four names (the ';' optional, no letters after the name) and
# numeric references of at most 7 decimal / 6 hex digits; anything else stays a literal '&'.
ENTITY = re.compile(
    r"&(?:(lt|gt|amp|quot)(?![A-Za-z])|#([0-9]{1,7})(?![0-9])|#[xX]([0-9a-fA-F]{1,6})(?![0-9a-fA-F]));?"
)
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}

Unit = tuple[str, int]  # (text of one line or block, its visible length in UTF-16 units)


# --------------------------------------------------------------------------- alerts


def alert_html(logged: LoggedChange, delayed: bool = False, *, max_lines: int | None = MAX_DIFF_LINES) -> str:
    """One alert as Telegram HTML: the content of the console alert, with the title linked.

    `delayed`: the alert waited in the outbox too long; say when it was detected.
    `max_lines`: added/removed lines shown for a page change, each (None: all of them).
    """
    change = logged.change
    lines = [_header(logged), f"{_kind(change)}: {_title(change)}"]
    if change.before:
        lines.append(f"Was: {_text(was_text(change.before))}")
    if change.date:
        lines.append(f"Date: {_text(hk_time(change.date))}")
    for label, link in seen_in(logged):
        lines.append(f"Also: {_link(link, _text(label))}")
    if change.matches:
        lines.append(f"Matched: {_text(matched_terms(logged), clip=False)}")
    if note := alert_note(logged):
        lines.append(f"<i>{_text(note)}</i>")
    lines += _diff_lines("+", change.added, logged.id, max_lines)
    lines += _diff_lines(MINUS, change.removed, logged.id, max_lines)
    footer = f"{change.source_id} · change #{logged.id}"
    if delayed:
        footer += f" · Delayed: detected {hk_time(logged.detected_at)}"
    lines.append(f"<i>{_text(footer, clip=False)}</i>")
    return "\n".join(lines)


def digest_html(changes: list[LoggedChange], heading: str = "new") -> str:
    """Several alerts for one chat as one message: a count, then a short linked entry for each, up
    to MAX_DIGEST_ENTRIES: a flood (a listing that suddenly carries thousands of items) must not
    become a hundred messages holding the chat's real alerts back for an hour. `heading`: what the
    count says they are ("new"; /recent's are "latest")."""
    count = len(changes)
    lines = [f"<b>{count:,} {heading} alert{'' if count == 1 else 's'}</b>"]
    for logged in _in_turn_by_source(changes, MAX_DIGEST_ENTRIES):
        change = logged.change
        entry = f"{_kind(change)}: {_title(change)}"
        if change.date:
            entry += f" · {_text(hk_time(change.date))}"
        lines += ["", _header(logged), entry]
    if count > MAX_DIGEST_ENTRIES:
        more = count - MAX_DIGEST_ENTRIES
        lines += ["", f"<i>… and {more:,} more, in the change log (policy-monitor log)</i>"]
    return "\n".join(lines)


def _in_turn_by_source(changes: list[LoggedChange], most: int) -> list[LoggedChange]:
    """At most `most` of `changes`, in their order, taken in turn from each source: one listing's
    flood does not hide another source's alert among the ones only counted."""
    if len(changes) <= most:
        return changes
    by_source: dict[str, list[int]] = {}
    for index, logged in enumerate(changes):
        by_source.setdefault(logged.change.source_id, []).append(index)
    in_turn = sorted((turn, index) for indexes in by_source.values() for turn, index in enumerate(indexes))
    return [changes[index] for index in sorted(index for _, index in in_turn[:most])]


def _header(logged: LoggedChange) -> str:
    topics = ", ".join(logged.change.topics) or "no topic"
    return f"<b>{_text(logged.regulator)}</b> · {_text(topics, clip=False)}"


def _kind(change: Change) -> str:
    return KIND_LABEL.get(change.kind, change.kind.upper())


def _title(change: Change) -> str:
    """The title linked to the item; bold when there is no http(s) link (never a javascript: one)."""
    return _link(change.link, _text(change.title) or "(untitled)")


def _link(url: str, label_html: str) -> str:
    """A link to an http(s) URL; bold text otherwise (never a javascript: link)."""
    link = clean_text(url).replace(" ", "%20")
    if not link.lower().startswith(("https://", "http://")):
        return f"<b>{label_html}</b>"
    return f'<a href="{html.escape(link, quote=True)}">{label_html}</a>'


def _diff_lines(sign: str, lines: tuple[str, ...], change_id: int, max_lines: int | None) -> list[str]:
    shown = lines if max_lines is None else lines[:max_lines]
    out = [f"{sign} {_text(line)}" for line in shown]
    if len(lines) > len(shown):
        more = len(lines) - len(shown)
        out.append(f"{sign} … {more} more line{'' if more == 1 else 's'} (policy-monitor show {change_id})")
    return out


def _text(text: str, clip: bool = True) -> str:
    """Scraped text for one line: invisible characters and line breaks gone, clipped, escaped.

    Clipped before escaping, so a clip never cuts an entity such as &amp; in two.
    """
    text = clean_text(text)
    if clip and len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return html.escape(text, quote=False)


# --------------------------------------------------------------------------- plain text


def plain_text(html_text: str) -> str:
    """What Telegram shows for `html_text`: tags removed, entities decoded. For resending an alert
    as plain text when Telegram answers "can't parse entities"."""
    return ENTITY.sub(_decode_entity, TAG.sub("", html_text))


def _decode_entity(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name:
        return NAMED[name]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group()  # tdlib leaves these as text (or refuses surrogates)
    return chr(code)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# --------------------------------------------------------------------------- splitting


def split_message(html_text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """HTML -> parts whose visible text is at most `limit` UTF-16 units, each valid HTML on its own.

    Cuts only at line breaks outside tags. When there are several parts each starts with "(i/n) ".
    A line (or a tag spanning lines) too long for one part is degraded to escaped plain text and cut
    into pieces, so a cut never falls inside a tag or an entity. Nothing visible: no parts.
    """
    return _split(html_text, limit, _html_units)


def split_plain(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Plain text (sent without parse mode) -> numbered parts of at most `limit` UTF-16 units."""
    return _split(text, limit, _plain_units)


def _split(text: str, limit: int, units_for: Callable[[str, int], list[Unit]]) -> list[str]:
    if limit < MIN_LIMIT:
        raise ValueError(f"limit {limit} is too small to split a message into numbered parts")
    if not text.strip():
        return []
    units = units_for(text, limit)
    if sum(size for _, size in units) + len(units) - 1 <= limit:
        return [text]
    digits = 1
    while True:  # the prefix's room depends on the number of parts: grow it until it fits
        reserve = len(f"({'9' * digits}/{'9' * digits}) ")
        parts = _pack(units_for(text, limit - reserve), limit - reserve)
        if len(str(len(parts))) <= digits:
            return [f"({i}/{len(parts)}) {part}" for i, part in enumerate(parts, 1)]
        digits += 1


def _pack(units: list[Unit], budget: int) -> list[str]:
    """Greedy: as many whole paragraphs per part as fit; blank lines never open or close a part."""
    parts: list[list[str]] = []
    current: list[str] = []
    used = 0
    for text, size in _paragraphs(units, budget):
        if current and used + 1 + size > budget:
            parts.append(current)
            current, used = [], 0
        if not current and not text.strip():
            continue
        used += size + (1 if current else 0)
        current.append(text)
    parts.append(current)
    for part in parts:
        while part and not part[-1].strip():
            part.pop()
    return ["\n".join(part) for part in parts if part]


def _paragraphs(units: list[Unit], budget: int) -> list[Unit]:
    """The units between blank lines as one unit when they fit in a part, so a digest's header
    never ends one part while its entry opens the next."""
    out: list[Unit] = []
    paragraph: list[Unit] = []
    for unit in [*units, ("", 0)]:  # a blank line at the end closes the last paragraph
        if unit[0].strip():
            paragraph.append(unit)
            continue
        size = sum(s for _, s in paragraph) + len(paragraph) - 1
        if len(paragraph) > 1 and size <= budget:
            out.append(("\n".join(text for text, _ in paragraph), size))
        else:
            out += paragraph
        out.append(unit)
        paragraph = []
    return out[:-1]


def _html_units(html_text: str, budget: int) -> list[Unit]:
    units: list[Unit] = []
    for block in _blocks(html_text.split("\n")):
        visible = plain_text(block)
        size = utf16_len(visible)
        if size <= budget:
            units.append((block, size))
            continue
        for line in visible.split("\n"):  # too long: its text alone, escaped after cutting
            units += [(html.escape(piece, quote=False), utf16_len(piece)) for piece in _cut(line, budget)]
    return units


def _plain_units(text: str, budget: int) -> list[Unit]:
    return [(piece, utf16_len(piece)) for line in text.split("\n") for piece in _cut(line, budget)]


def _blocks(lines: list[str]) -> Iterator[str]:
    """Lines joined while a tag is open across a line break (never in our own HTML, but safe)."""
    block: list[str] = []
    depth = 0
    for line in lines:
        block.append(line)
        depth += sum(-1 if tag.group().startswith("</") else 1 for tag in TAG.finditer(line))
        if depth <= 0:
            yield "\n".join(block)
            block, depth = [], 0
    if block:
        yield "\n".join(block)


def _cut(line: str, budget: int) -> list[str]:
    """A line in pieces of at most `budget` UTF-16 units, after a space when one is near the end."""
    if utf16_len(line) <= budget:
        return [line]
    pieces = []
    start = 0
    while start < len(line):
        end, used = start, 0
        while end < len(line) and used + (width := 2 if ord(line[end]) > 0xFFFF else 1) <= budget:
            used += width
            end += 1
        if end < len(line):
            space = line.rfind(" ", start, end)
            if space >= start + (end - start) // 2:
                end = space + 1
        pieces.append(line[start:end])
        start = end
    return pieces
