"""The HTML report: pages built from hand-made change-log entries, one built from real rounds through
the CLI, and the site opened in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import lxml.html
import pytest

from monitor.localsite import Response
from monitor.models import Change, LoggedChange, Review
from monitor.report import change_page, highlight, write_report
from tests.conftest import REGISTER, ROUND2, SFC_PRESS, rss_source

CHROMIUM = shutil.which("chromium")
HOSTILE = '<script>alert(1)</script> & "x"'
ZH_TITLE = "證監會與金管局就向零售投資者分銷持牌穩定幣發出聯合通函"
AFTER, BEFORE = "a" * 64, "b" * 64
REGISTER_DIFF = """--- before
+++ after
@@ -1,3 +1,3 @@
 Register of Licensed Stablecoin Issuers
-Harbour Stablecoin Limited | SC0002
+Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003
 Last updated by the HKMA"""


def logged(number: int, detected_at: str, state: str, change: Change, **evidence) -> LoggedChange:
    return LoggedChange(id=number, regulator=evidence.pop("regulator", "SFC"), detected_at=detected_at,
                        fetched_at=detected_at, change=change, state=state, **evidence)  # fmt: skip


CIRCULAR = logged(1, "2026-11-20T02:00:00+00:00", "reviewed", Change(
    "sfc-circulars-en", "new", "Circular on distributing licensed Stablecoins to retail investors",
    link="https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/doc?refNo=26EC51", date="2026-11-20",
    text="Intermediaries distributing stablecoins must assess suitability.", topics=("stablecoin",),
    matches={"stablecoin": ("stablecoin",)}), raw_sha256=AFTER, http_status=200)  # fmt: skip
CHINESE = logged(2, "2026-11-21T02:00:00+00:00", "new", Change(
    "sfc-circulars-tc", "new", ZH_TITLE, link="https://apps.sfc.hk/edistributionWeb/gateway/TC/circular/",
    topics=("stablecoin",), matches={"stablecoin": ("穩定幣",)}), raw_sha256=AFTER)  # fmt: skip
REGISTER_PAGE = logged(3, "2026-11-22T02:00:00+00:00", "escalated", Change(
    "hkma-stablecoin-register", "page", "Register of Licensed Stablecoin Issuers",
    link="https://www.hkma.gov.hk/eng/stablecoin-register/", topics=("stablecoin",),
    added=("Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003",),
    removed=("Harbour Stablecoin Limited | SC0002",), diff=REGISTER_DIFF,
    matches={"stablecoin": ("stablecoin",)}), regulator="HKMA", raw_sha256=AFTER, old_raw_sha256=BEFORE,
    final_url="https://www.hkma.gov.hk/eng/stablecoin-register/", http_status=200, old_snapshot="snap-1",
    new_snapshot="snap-2", headers={"content-type": "text/html; charset=utf-8", "etag": '"r42"'})  # fmt: skip
HOSTILE_CHANGE = logged(4, "2026-11-23T02:00:00+00:00", "dismissed", Change(
    "hostile", "new", HOSTILE, link="javascript:alert(1)", topics=("e-hkd",), matches={"e-hkd": ("alert",)},
    text="<img src=x onerror=\"document.title='pwned'\">"), final_url="javascript:alert(2)",
    headers={"etag": "<b>bold</b>"})  # fmt: skip
CHANGES = [CIRCULAR, REGISTER_PAGE, CHINESE, HOSTILE_CHANGE]  # not in order: the report sorts
REVIEWS = {
    1: [Review(1, "reviewed", "amy", "Circular noted; <no action> needed", "2026-11-20T03:00:00+00:00")],
    3: [Review(3, "escalated", "ken", "New issuer: tell the desk", "2026-11-22T03:30:00+00:00")],
}


@pytest.fixture
def report(tmp_path) -> Path:
    """The report folder written from CHANGES."""
    index = write_report(CHANGES, REVIEWS, tmp_path / "report", "2026-11-25T10:00:00+00:00")
    assert index == tmp_path / "report" / "index.html"
    return index.parent


def read(report: Path, name: str) -> str:
    return (report / name).read_text(encoding="utf-8")


def test_every_page_is_utf8_with_a_language_and_no_outside_assets(report):
    for page in [report / "index.html", *sorted((report / "changes").glob("*.html"))]:
        html = page.read_text(encoding="utf-8")
        assert html.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'), page
        assert not re.search(r"<(link|img|iframe|object|embed)\b|<script [^>]*src|@import|url\(", html), page
    assert sorted(p.name for p in (report / "changes").iterdir()) == ["1.html", "2.html", "3.html", "4.html"]


def test_index_lists_newest_first_with_counts_filters_and_links(report):
    html = read(report, "index.html")
    doc = lxml.html.fromstring(html)
    assert doc.findtext(".//title") == "hk-policy-monitor change log"
    assert "Generated 2026-11-25 18:00 HKT." in doc.text_content()
    assert "4 changes: 1 new, 1 escalated, 1 reviewed, 1 dismissed." in doc.text_content()
    rows = doc.xpath("//tbody/tr")
    assert [r.xpath("td[1]")[0].text for r in rows] == ["4", "3", "2", "1"]
    assert [r.xpath(".//a/@href")[0] for r in rows] == [f"changes/{n}.html" for n in (4, 3, 2, 1)]
    assert [r.get("data-state") for r in rows] == ["dismissed", "escalated", "new", "reviewed"]
    assert rows[1].get("data-regulator") == "HKMA" and rows[1].get("data-topic") == "stablecoin"
    assert [td.text_content() for td in rows[1]][1:7] == [
        "2026-11-22 10:00 HKT", "HKMA", "hkma-stablecoin-register", "page", "stablecoin", "escalated",
    ]  # fmt: skip
    assert rows[2].xpath(".//a")[0].text == ZH_TITLE and rows[2].xpath(".//a/@lang") == ["zh-HK"]
    assert doc.xpath('//select[@data-filter="state"]/option/@value') == ["", *sorted(["new", "escalated",
        "reviewed", "dismissed"])]  # fmt: skip
    assert doc.xpath('//select[@data-filter="topic"]/option/@value') == ["", "e-hkd", "stablecoin"]
    # Readable with JavaScript off: the filter controls start hidden and no row is hidden.
    assert doc.get_element_by_id("filters").get("hidden") is not None and "tr hidden" not in html


@pytest.mark.parametrize(
    ("change_id", "marked"),
    [(1, "Circular on distributing licensed <mark>Stablecoin</mark>s to retail investors"),
     (2, "證監會與金管局就向零售投資者分銷持牌<mark>穩定幣</mark>發出聯合通函"),
     (3, "Register of Licensed <mark>Stablecoin</mark> Issuers")],
    ids=["english-any-case", "chinese", "page"],
)  # fmt: skip
def test_matched_terms_are_highlighted_in_the_title(report, change_id, marked):
    html = read(report, f"changes/{change_id}.html")
    assert f"#{change_id} {marked}</h1>" in html
    assert ('<h1 lang="zh-HK">' in html) == (change_id == 2)  # Traditional Chinese glyphs


def test_a_page_change_shows_an_inline_diff_with_context(report):
    doc = lxml.html.fromstring(read(report, "changes/3.html"))
    lines = [(d.get("class"), d.text_content()) for d in doc.xpath('//div[@class="diff"]/div')]
    assert lines == [
        ("hunk", "@@ -1,3 +1,3 @@"),
        (None, "  Register of Licensed Stablecoin Issuers"),
        ("removed", "− Harbour Stablecoin Limited | SC0002"),
        ("added", "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003"),
        (None, "  Last updated by the HKMA"),
    ]
    assert doc.xpath('//div[@class="added"]/mark/text()') == ["Stablecoin"]


def test_changed_lines_that_start_with_dashes_or_pluses_are_shown():
    """A separator row ("-- End --") or a line of "++" removed or added is a change like any other."""
    diff = "--- before\n+++ after\n@@ -1,2 +1,2 @@\n Register\n--- stablecoin issuers under review ---\n+++ Notice: SC0002 revoked ++"
    page = replace(REGISTER_PAGE, change=replace(REGISTER_PAGE.change, diff=diff))
    doc = lxml.html.fromstring(change_page(page, []))
    lines = [(d.get("class"), d.text_content()) for d in doc.xpath('//div[@class="diff"]/div')]
    assert lines[-2:] == [
        ("removed", "− -- stablecoin issuers under review ---"),
        ("added", "+ ++ Notice: SC0002 revoked ++"),
    ]


def test_without_a_unified_diff_the_added_and_removed_lines_are_shown():
    bare = replace(REGISTER_PAGE, change=replace(REGISTER_PAGE.change, diff=""))
    html = change_page(bare, [])
    assert '<div class="added">+ Pearl Delta Bank <mark>Stablecoin</mark> (Hong Kong)' in html
    assert '<div class="removed">− Harbour <mark>Stablecoin</mark> Limited | SC0002</div>' in html


def test_the_evidence_block_and_review_history(report):
    doc = lxml.html.fromstring(read(report, "changes/3.html"))
    evidence = {tr[0].text: tr[1].text_content() for tr in doc.xpath('//table[@class="evidence"]/tr')}
    assert evidence == {
        "Final URL": "https://www.hkma.gov.hk/eng/stablecoin-register/",
        "Fetched": "2026-11-22 10:00 HKT (2026-11-22 02:00:00 UTC)",
        "HTTP status": "200",
        "Headers": 'content-type: text/html; charset=utf-8etag: "r42"',
        "Raw body sha256 (after)": AFTER,
        "Raw body sha256 (before)": BEFORE,
        "Snapshot (before)": "snap-1",
        "Snapshot (after)": "snap-2",
    }
    assert doc.xpath('//ol[@class="history"]/li')[0].text_content() == (
        "2026-11-22 11:30 HKT: escalated by ken — New issuer: tell the desk"
    )
    first = lxml.html.fromstring(read(report, "changes/1.html"))
    assert "Raw body sha256 (before)none (first version)" in first.text_content()
    assert "Not reviewed yet." in read(report, "changes/2.html")


def test_change_pages_link_to_the_original_and_back_to_the_index(report):
    doc = lxml.html.fromstring(read(report, "changes/1.html"))
    assert doc.xpath("//a/@href")[0] == "../index.html"
    original = doc.xpath('//tr[th="Original"]//a')[0]
    assert original.get("href") == CIRCULAR.change.link and original.get("rel") == "noopener noreferrer"
    assert 'href="https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/doc?refNo=26EC51"' in read(
        report, "changes/1.html"
    )  # the & in a query would be &amp;: attribute values are escaped like text


def test_untrusted_text_is_escaped_everywhere(report):
    html = read(report, "changes/4.html")
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "#4 &lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt; &amp; &quot;x&quot;</h1>" in html
    assert "<title>#4 &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;</title>" in html
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;" in html
    assert "etag: &lt;b&gt;bold&lt;/b&gt;" in html and "Circular noted; &lt;no action&gt; needed" in read(
        report, "changes/1.html"
    )
    # Only http(s) addresses become links; javascript: is shown as text.
    assert "javascript:" not in "".join(lxml.html.fromstring(html).xpath("//a/@href"))
    assert "<td>javascript:alert(1)</td>" in html and "<td>javascript:alert(2)</td>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in read(report, "index.html")


def test_highlight_ignores_empty_terms_and_prefers_the_longest():
    assert highlight("e-HKD pilot", ["", "e-HKD", "e-HKD pilot"]) == "<mark>e-HKD pilot</mark>"
    assert highlight("a <b> & c", []) == "a &lt;b&gt; &amp; c"


# --- the report from real rounds, through the CLI ----------------------------------------------------


def test_the_cli_report_from_real_rounds(monitor, capsys, tmp_path):
    feed = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_bytes()
    serve = lambda body: lambda h: Response(200, body, {"Content-Type": "application/rss+xml"})  # noqa: E731
    monitor.site.routes["/hostile.xml"] = serve(feed)
    monitor.write(SFC_PRESS, REGISTER, rss_source("hostile", "/hostile.xml"))
    monitor.round(capsys)
    hostile = feed.replace(b"<title>Market Misconduct", b"<title>&lt;script&gt;x&lt;/script&gt; Market", 1)
    monitor.site.routes["/hostile.xml"] = serve(hostile)
    monitor.round(capsys, ROUND2)
    monitor.round(capsys, ROUND2)  # a retitle is told when it is seen again (a stale copy has the old title)
    with sqlite3.connect(monitor.db) as conn:
        ids = dict(conn.execute("SELECT source_id || ':' || kind, id FROM changes"))
    out = tmp_path / "site"
    code, printed, _ = monitor("report", "--out", str(out), capsys=capsys)
    assert code == 0 and printed.endswith(f"{out / 'index.html'}\n")
    index = read(out, "index.html")
    assert all(f'href="changes/{i}.html"' in index for i in ids.values()) and len(ids) == 3
    register = read(out, f"changes/{ids['hkma-stablecoin-register:page']}.html")
    assert '<div class="added">+ Pearl Delta Bank <mark>Stablecoin</mark> (Hong Kong) Limited' in register
    assert re.search(r"<th>Raw body sha256 \(after\)</th><td>[0-9a-f]{64}</td>", register)
    assert "&lt;script&gt;x&lt;/script&gt;" in read(out, f"changes/{ids['hostile:changed']}.html")

    (out / "changes" / "notes.html").write_text("mine", encoding="utf-8")  # not the monitor's: kept
    code, _, _ = monitor("report", "--out", str(out), "--regulator", "HKMA", capsys=capsys)  # the same folder
    assert code == 0
    assert sorted(p.name for p in (out / "changes").iterdir()) == sorted(
        [f"{ids['hkma-stablecoin-register:page']}.html", "notes.html"]
    )  # the pages of the earlier, wider report are gone: no stale page outside the index


@pytest.mark.parametrize(
    ("where", "reason"),
    [("/proc/nope", "no such file or directory"), ("a-file", "not a directory")],
    ids=["cannot-create", "a-file"],
)
def test_a_report_folder_that_cannot_be_written_is_a_one_line_error(monitor, capsys, tmp_path, where, reason):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    (tmp_path / "a-file").write_text("notes", encoding="utf-8")
    out = where if where.startswith("/") else str(tmp_path / where)
    code, printed, err = monitor("report", "--out", out, capsys=capsys)
    assert (code, printed) == (2, "")
    assert err == (
        f"error: --out {out}: cannot write there: {reason} "
        "(--out names the folder to write index.html and changes/ into)\n"
    )


# --- in a real browser -----------------------------------------------------------------------------


@pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="Debian's chromium is not installed (CI installs it)"
)
def test_the_report_renders_in_headless_chromium(report, tmp_path):
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    index = browse(report / "index.html", tmp_path)
    rows = index.xpath("//tbody/tr")
    assert [r.xpath(".//a")[0].text_content() for r in rows] == [
        HOSTILE, REGISTER_PAGE.change.title, ZH_TITLE, CIRCULAR.change.title,
    ]  # fmt: skip
    assert "4 changes: 1 new, 1 escalated, 1 reviewed, 1 dismissed." in index.text_content()

    # Follow the register's link as a reader would: its rendered text has the title and the evidence.
    register = browse(report / rows[1].xpath(".//a/@href")[0], tmp_path)
    text = register.text_content()
    assert "Register of Licensed Stablecoin Issuers" in text and AFTER in text and BEFORE in text
    assert register.xpath('//div[@class="added"]')[0].text_content().startswith("+ Pearl Delta Bank")

    # The hostile title is text on the page; neither it nor the onerror ever ran.
    hostile = browse(report / rows[0].xpath(".//a/@href")[0], tmp_path)
    assert hostile.xpath("//h1")[0].text_content() == f"#4 {HOSTILE}"
    assert hostile.findtext(".//title") == f"#4 {HOSTILE}" and not hostile.xpath("//body//script | //img")

    # The inline filter script runs (the page's CSP allows it by hash): ?state= preselects a filter.
    filtered = browse(report / "index.html", tmp_path, query="?state=escalated")
    shown = [r.get("data-state") for r in filtered.xpath("//tbody/tr[not(@hidden)]")]
    assert shown == ["escalated"] and "1 shown" in filtered.text_content()
    # An inbox bookmark with nothing in it is empty, not everything; a name's case does not matter.
    empty = browse(report / "index.html", tmp_path, query="?state=flagged")
    assert not empty.xpath("//tbody/tr[not(@hidden)]") and "0 shown" in empty.text_content()
    hkma = browse(report / "index.html", tmp_path, query="?regulator=hkma")
    assert [r.get("data-regulator") for r in hkma.xpath("//tbody/tr[not(@hidden)]")] == ["HKMA"]

    screenshot = tmp_path / "chinese.png"
    browse(report / "changes" / "2.html", tmp_path, screenshot=screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def browse(page: Path, tmp_path: Path, query: str = "", screenshot: Path | None = None):
    """The DOM headless Chromium renders (scripts run), parsed; or a screenshot of the page."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    command += [f"--screenshot={screenshot}", "--window-size=1200,900"] if screenshot else ["--dump-dom"]
    # Its own session, so a hung browser is killed with all its helper processes.
    with subprocess.Popen([*command, page.as_uri() + query], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as browser:  # fmt: skip
        try:
            out, err = browser.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.communicate()
            pytest.fail(f"chromium took over 60 s on {page}")
    assert browser.returncode == 0, err[-2000:]
    return None if screenshot else lxml.html.fromstring(out)
