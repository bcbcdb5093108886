"""Per-request noise in a page's raw bytes: is this body the last one, but for its tokens?

Noise is what no reader would call content: CSRF tokens in <meta> tags (the HKMA's pages carry
one) and hidden form fields, CSP nonces, "page generated at <time>" stamps, and inline scripts
(render times, analytics ids; no extractor reads a script). A page whose digest without them is
the last one is not parsed at all.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

# Found by plain substring search on a lower-cased copy: a case-insensitive regex over a 100 KB
# page costs ~2 ms, more than the parse this digest is there to save.
TOKEN_MARKERS = (b"csrf", b"__requestverificationtoken", b"authenticity_token", b"nonce=")
# What follows "generated " on a lower-cased page: "at" or "on", then a date and time in one of the
# shapes regulators' sites print (2026-07-30 10:15:03, 30/07/2026 10:15, 2026-07-30t10:15:03.5+08:00,
# 10:15 30/07/2026), nothing past them: "generated at 10:15:03 12 issuers" keeps its "12".
DATE = rb"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})"
TIME = rb"\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?"
# White space is bounded (a template's line break and indent fit), and so is a stamp: see MARGIN.
STAMP = re.compile(
    rb"(?:at|on):?\s{0,16}(?:%s(?:(?:t|\s{1,16}|,\s{0,16})%s)?|%s(?:\s{1,16}%s)?)(?:z|[+-]\d{2}:?\d{2})?"
    % (DATE, TIME, TIME, DATE)
)
# The same stamps in a page's text, "generated" with them (a register's "Page generated at ..." line).
TEXT_STAMP = re.compile(r"generated\s{1,16}" + STAMP.pattern.decode("ascii"), re.I)
# A token's tag is looked for this far either side of its marker (a CSRF <meta> is ~120 bytes):
# a bound, so that what can join a span from its surroundings is bounded too (MARGIN).
MAX_TAG = 1024
MARGIN = MAX_TAG + 32  # longer than a tag's reach past its marker, any marker and any stamp

Spans = list[tuple[int, int]]


class StableDigest(NamedTuple):
    sha256: str  # of the body without its noise, and of the config it is read with
    noise: str = ""  # where the noise was, "start-end" byte offsets: the next round's first guess


def stable_digest(
    body: bytes, config: str, markup: bool = True, last: StableDigest | None = None
) -> StableDigest:
    """Equal digests mean nothing a reader sees changed, and a changed selector is applied at once.
    `markup` is False for feeds and APIs, whose bytes are digested whole.

    `last` is the digest the source's last body had. Scanning a 100 KB page for noise costs
    ~0.25 ms, a sixth of what a source that did not change costs in all; but tokens and stamps
    keep their length, so the noise is where it was. When each of the last spans is still noise
    and the rest hashes to the last digest, the page is the same without a scan."""
    config_bytes = config.encode("utf-8", "replace")
    if not markup:
        digest = hashlib.sha256(config_bytes)
        digest.update(body)
        return StableDigest(digest.hexdigest())
    if last and last.sha256:
        spans = _parse_spans(last.noise)
        if (
            spans is not None
            and _still_noise(body, spans)
            and _digest_outside(body, config_bytes, spans) == last.sha256
        ):
            return last
    spans = _merged(_noise_spans(body.lower()))
    return StableDigest(_digest_outside(body, config_bytes, spans), " ".join(f"{s}-{e}" for s, e in spans))


def _digest_outside(body: bytes, config: bytes, spans: Spans) -> str:
    digest, view, kept = hashlib.sha256(config), memoryview(body), 0
    for start, end in spans:
        digest.update(view[kept:start])
        kept = end
    digest.update(view[kept:])
    return digest.hexdigest()


def _still_noise(body: bytes, spans: Spans) -> bool:
    """Each span of the last body is noise from end to end in this one, and no more than that:
    scanned with MARGIN bytes of its surroundings, so that a script left unclosed, a stamp that
    now runs on into the digits after it, or a token's tag reaching across its edge is not taken
    for the old span (a full scan would find a longer one, and the content it swallows must be
    compared). Spans whose surroundings meet (a page head's scripts) are scanned in one window:
    a window each would scan the bytes between them again and again."""
    if not all(0 <= start < end <= len(body) for start, end in spans):
        return False
    for group in _near_each_other(spans):
        start, end = group[0][0], group[-1][1]
        window = max(0, start - MARGIN)
        found = _merged(_noise_spans(body[window : end + MARGIN].lower()))
        # Noise found between the group's spans is new (the last full scan found none there): a scan.
        touching = [(s + window, e + window) for s, e in found if s < end - window and e > start - window]
        if touching != group:
            return False
    return True


def _near_each_other(spans: Spans) -> list[Spans]:
    """The spans (sorted, apart) in groups whose MARGIN surroundings overlap."""
    groups: list[Spans] = []
    for span in spans:
        if groups and span[0] - groups[-1][-1][1] <= 2 * MARGIN:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def _parse_spans(text: str) -> Spans | None:
    try:
        return [(int(s), int(e)) for s, _, e in (span.partition("-") for span in text.split())]
    except ValueError:  # not written by this module: scan the page
        return None


def _merged(spans: Spans) -> Spans:
    """Sorted, with overlapping and touching spans joined (a token inside a script is one span)."""
    merged: Spans = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _noise_spans(lowered: bytes) -> Spans:
    spans = []
    for marker in TOKEN_MARKERS:  # the whole tag that carries the marker
        at = lowered.find(marker)
        while at != -1:
            start = lowered.rfind(b"<", max(0, at - MAX_TAG), at)
            end = lowered.find(b">", at, at + MAX_TAG)
            if start != -1 and end != -1 and lowered.find(b">", start, at) == -1:
                spans.append((start, end + 1))
            at = lowered.find(marker, at + len(marker))
    at = lowered.find(b"<script")
    while at != -1:
        end = lowered.find(b"</script>", at)
        end = len(lowered) if end == -1 else end + len(b"</script>")
        spans.append((at, end))
        at = lowered.find(b"<script", end)
    at = lowered.find(b"generated ")
    while at != -1:
        stamp = STAMP.match(lowered, at + len(b"generated "))
        if stamp:
            spans.append((at, stamp.end()))
        at = lowered.find(b"generated ", at + 1)
    return spans


def without_stamps(line: str) -> str:
    """A line of a page's text without its "generated at <time>" stamps, for comparing versions:
    a stamp inside the region a source reads changes every time the page is read."""
    return TEXT_STAMP.sub("generated", line) if "generated" in line.lower() else line
