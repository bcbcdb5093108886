"""The noise digest: a page that changed only in its tokens is the same page, found without a scan
when the tokens are where they were, and content is never taken for noise."""

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.noise as noise
from monitor.noise import StableDigest, stable_digest

REGISTER = (
    Path(noise.__file__).parent / "demo" / "site" / "round1" / "hkma" / "eng" / "stablecoin-register.html"
).read_bytes()
CONFIG = "page hkma-stablecoin-register"


def served(token: str = "868dfec9", when: str = "2026-07-30 10:15:03", body: bytes = REGISTER) -> bytes:
    """The register as the HKMA serves it: a fresh CSRF token and time stamp in every response."""
    body = re.sub(rb'(csrf-token" content=")[0-9a-f]+', b"\\g<1>" + token.encode(), body)
    return re.sub(rb"generated at [0-9: -]+", b"generated at " + when.encode(), body)


@pytest.fixture
def scans(monkeypatch):
    """The sizes of the bytes scanned for noise, in calls."""
    sizes = []
    scan = noise._noise_spans
    monkeypatch.setattr(noise, "_noise_spans", lambda lowered: sizes.append(len(lowered)) or scan(lowered))
    return sizes


def test_new_tokens_where_the_old_ones_were_are_found_without_scanning_the_page(scans):
    first = stable_digest(served(), CONFIG)
    assert first.noise and scans == [len(served())]

    scans.clear()
    later = stable_digest(served("f00dcafe", "2026-07-30 10:45:17"), CONFIG, last=first)
    assert later == first
    assert (
        scans and max(scans) < len(served()) // 3
    )  # only the token, scripts and stamp, with their surroundings
    assert stable_digest(served("f00dcafe", "2026-07-30 10:45:17"), CONFIG) == first  # as a full scan says


def test_a_head_full_of_scripts_is_checked_without_scanning_more_than_the_page(scans):
    """Analytics and tag-manager snippets sit a few bytes apart: their surroundings are scanned
    once, not once for each of them (which was more bytes than a full scan reads)."""

    def with_scripts(render: str) -> bytes:
        scripts = "".join(f'<script>dataLayer.push({{"t{n}": "{render}"}});</script>\n' for n in range(40))
        return served().replace(b"<head>\n", b"<head>\n" + scripts.encode(), 1)

    first = stable_digest(with_scripts("10:15:03.118"), CONFIG)
    assert len(noise._parse_spans(first.noise)) > 40

    scans.clear()
    assert stable_digest(with_scripts("10:45:17.902"), CONFIG, last=first) == first
    assert sum(scans) < len(with_scripts(""))


def test_a_new_issuer_is_a_different_page_with_or_without_the_last_noise():
    first = stable_digest(served(), CONFIG)
    added = served(
        body=REGISTER.replace(b"</tbody>", b"<tr><td>SC0009</td><td>Harbour Coin Ltd</td></tr></tbody>", 1)
    )
    assert added != served()
    assert stable_digest(added, CONFIG, last=first).sha256 != first.sha256
    assert stable_digest(added, CONFIG).sha256 != first.sha256


def test_noise_that_moved_is_found_by_a_full_scan_and_remembered(scans):
    first = stable_digest(served(), CONFIG)
    longer = served("868dfec9868dfec9")  # a longer token: every later span moves
    scans.clear()
    later = stable_digest(longer, CONFIG, last=first)
    assert later.sha256 == first.sha256 and later.noise != first.noise
    assert max(scans) == len(longer)  # the page was scanned
    assert stable_digest(served("0123456789abcdef"), CONFIG, last=later) == later


def test_content_written_where_a_token_was_is_not_taken_for_noise():
    first = stable_digest(served(), CONFIG)
    tag = re.search(rb'<meta name="csrf-token"[^>]*>', served())[0]
    content = b"<p>" + b"SC0009 Harbour Coin Ltd".ljust(len(tag) - 7) + b"</p>"
    replaced = served().replace(tag, content)
    assert len(replaced) == len(served())  # every other byte where it was
    assert stable_digest(replaced, CONFIG, last=first).sha256 != first.sha256


def test_a_new_script_is_noise_and_its_place_is_remembered():
    first = stable_digest(served(), CONFIG)
    scripted = served().replace(b"</body>", b'<script>window.__RENDERED = "10:45:17";</script></body>')
    later = stable_digest(scripted, CONFIG, last=first)
    assert later.sha256 == first.sha256 and later.noise != first.noise


PIECES = [
    b"<",
    b">",
    b"/",
    b"<script>",
    b"</script>",
    b"csrf",
    b"generated at ",
    b"1",
    b" ",
    b"a",
    b'"',
    b"nonce=",
    b":",
    b"-",
    b"2026-07-30",
    b"10:15",
]


@settings(max_examples=500, deadline=None)
@given(which=st.integers(0, 3), pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=60))
def test_the_last_noise_says_same_only_where_a_full_scan_says_same(which, pieces):
    """Anything written where the noise was, at its length: an unclosed script or a stamp that
    runs on into the content after it must not pass for the old span."""
    first = stable_digest(served(), CONFIG)
    start, end = noise._parse_spans(first.noise)[which]
    rewritten = served()[:start] + b"".join(pieces).ljust(end - start, b"x")[: end - start] + served()[end:]
    if stable_digest(rewritten, CONFIG, last=first) == first:
        assert stable_digest(rewritten, CONFIG).sha256 == first.sha256


STAMP, SCRIPT = b"generated at 2024-01-01 10:00:00", b"<script>" + b"y" * 15 + b"</script>"  # 32 bytes each
FAR = b"x" * 100  # farther from the span than a short margin


@pytest.mark.parametrize(
    "before, after",
    [
        # a token's tag after the span, whose "<" is now before it
        (b"<p>x</p><div class=a " + SCRIPT + b"x " + FAR + b" csrf=1>rest</div>",
         b"<p>x</p><div class=a " + STAMP + b"x " + FAR + b" csrf=1>rest</div>"),
        # a token's tag before the span, whose ">" is now in it
        (b"<p>x</p><input name=csrf value=abc " + FAR + b" " + STAMP + b"x tail",
         b"<p>x</p><input name=csrf value=abc " + FAR + b" " + SCRIPT + b"x tail"),
        # a script left open to the end of the body, closed now at the same length
        (b"<p>Notice</p><input type=hidden name=csrf value=abc " + FAR + b" <script src=x.js defer async xxxxxxxxxx",
         b"<p>Notice</p><input type=hidden name=csrf value=abc " + FAR + b" <script src=x.js>" + b"z" * 13 + b"</script>"),
    ],
    ids=["tag-after", "tag-before", "unclosed-script"],
)  # fmt: skip
def test_noise_that_joins_content_far_from_its_span_is_found_by_a_full_scan(before, after):
    first = stable_digest(before, CONFIG)
    assert len(after) == len(before)
    fast, full = stable_digest(after, CONFIG, last=first), stable_digest(after, CONFIG)
    assert fast.sha256 == full.sha256


@pytest.mark.parametrize("remembered", ["", "garbage", "0-99999999", "5-3"])
def test_a_remembered_noise_that_does_not_fit_the_page_falls_back_to_a_scan(remembered):
    first = stable_digest(served(), CONFIG)
    assert stable_digest(served("f00dcafe"), CONFIG, last=StableDigest(first.sha256, remembered)) == first


def test_a_feed_is_digested_whole():
    feed = b"<rss><channel><item><title>Report generated at 2026-11-25 10:00</title></item></channel></rss>"
    later = feed.replace(b"2026-11-25", b"2026-11-26")
    assert stable_digest(feed, "rss", markup=False) != stable_digest(later, "rss", markup=False)
    assert stable_digest(feed, "rss", markup=False).noise == ""


@pytest.mark.parametrize(
    "page, later",
    [
        (b"<p>Register generated at 2026-07-30 10:15:03 12 issuers</p>",
         b"<p>Register generated at 2026-07-30 10:45:17 13 issuers</p>"),
        (b"<p>Generated on 30/07/2026 10:15. 4 platforms licensed</p>",
         b"<p>Generated on 30/07/2026 10:45. 5 platforms licensed</p>"),
    ],
    ids=["count-after-time", "count-after-full-stop"],
)  # fmt: skip
def test_a_number_printed_after_a_time_stamp_is_content(page, later):
    """The stamp is the date and time, not what follows them: a change in the count next to it is
    a different page, which is then parsed (and alerted on if the count is watched)."""
    assert stable_digest(page, CONFIG).sha256 != stable_digest(later, CONFIG).sha256
    assert (
        stable_digest(later, CONFIG, last=stable_digest(page, CONFIG)).sha256
        != stable_digest(page, CONFIG).sha256
    )


@pytest.mark.parametrize(
    "shape",
    ["2026-07-30 10:15:03", "2026-07-30T10:15:03.123456+00:00", "30/07/2026 10:15", "10:15:03 30/07/2026",
     "2026.07.30", "2026-07-30, 10:15", "\n            2026-07-30 10:15:03"],
)  # fmt: skip
def test_a_time_stamp_in_any_usual_shape_is_noise(shape):
    earlier = shape.replace("10:15", "09:02").replace("30", "29", 1)
    page = b"<p>Page generated at %s HKT</p><p>SC0001 Harbour Coin Ltd</p>"
    assert (
        stable_digest(page % shape.encode(), CONFIG).sha256
        == stable_digest(page % earlier.encode(), CONFIG).sha256
    )
