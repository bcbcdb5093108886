"""The HTML report: built from real rounds through the CLI, then opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess

import pytest

from monitor.localsite import Response
from tests.conftest import REGISTER, ROUND2, SFC_PRESS, rss_source

CHROMIUM = shutil.which("chromium")
HOSTILE = "<script>document.title='pwned'</script> Stablecoin & \"issuers\""


@pytest.fixture
def report(monitor, capsys, tmp_path):
    feed = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_bytes()
    monitor.site.routes["/hostile.xml"] = lambda h: Response(
        200, feed, {"Content-Type": "application/rss+xml"}
    )
    monitor.write(SFC_PRESS, REGISTER, rss_source("hostile", "/hostile.xml"))
    monitor.round(capsys)
    escaped = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    hostile = feed.replace(b"<title>Market Misconduct", f"<title>{escaped} Market Misconduct".encode(), 1)
    monitor.site.routes["/hostile.xml"] = lambda h: Response(
        200, hostile, {"Content-Type": "application/rss+xml"}
    )
    monitor.round(capsys, ROUND2)
    with sqlite3.connect(monitor.db) as conn:
        ids = dict(conn.execute("SELECT source_id || ':' || kind, id FROM changes"))
    monitor(
        "review",
        str(ids["hkma-stablecoin-register:page"]),
        "--state",
        "escalated",
        "--by",
        "amy",
        capsys=capsys,
    )
    out = tmp_path / "site"
    code, printed, _ = monitor("report", "--out", str(out), capsys=capsys)
    assert code == 0 and printed == f"3 changes written to {out / 'index.html'}\n"
    return out, ids


def test_index_lists_changes_with_filters_and_counts(report):
    out, ids = report
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "3 changes: 2 new, 1 escalated, 0 reviewed, 0 dismissed." in index
    assert '<select data-filter="regulator">' in index and '<option value="stablecoin">' in index
    for change_id in ids.values():
        assert f'href="changes/{change_id}.html"' in index


def test_change_page_has_the_diff_highlights_and_evidence(report):
    out, ids = report
    page = (out / "changes" / f"{ids['hkma-stablecoin-register:page']}.html").read_text(encoding="utf-8")
    assert (
        '<div class="added">+ Pearl Delta Bank <mark>Stablecoin</mark> (Hong Kong) Limited | SC0003' in page
    )
    assert re.search(r"Raw body sha256 \(after\): [0-9a-f]{64}", page)
    assert "HTTP status: 200" in page and "escalated</b> by amy" in page
    tc = (out / "changes" / f"{ids['sfc-press-en:new']}.html").read_text(encoding="utf-8")
    assert "<mark>stablecoin</mark>s" in tc


def test_scraped_markup_is_escaped(report):
    out, ids = report
    page = (out / "changes" / f"{ids['hostile:changed']}.html").read_text(encoding="utf-8")
    assert "<script>document.title" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page


@pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="Debian's chromium is not installed (CI installs it)"
)
def test_the_report_renders_in_a_real_browser(report, tmp_path):
    assert CHROMIUM, "CI must have chromium: .ci/run installs it"
    out, ids = report
    index_dom = browse(out / "index.html", tmp_path)
    assert "hk-policy-monitor change log" in index_dom and "Pearl Delta Bank" not in index_dom
    link = re.search(r'href="(changes/\d+\.html)"', index_dom)[1]
    assert (out / link).exists()  # the index links to pages that exist
    register_dom = browse(out / "changes" / f"{ids['hkma-stablecoin-register:page']}.html", tmp_path)
    assert "Register of Licensed Stablecoin Issuers" in register_dom and "Evidence" in register_dom
    hostile_dom = browse(out / "changes" / f"{ids['hostile:changed']}.html", tmp_path)
    assert "<title>#" in hostile_dom and "pwned</title>" not in hostile_dom.split("</title>")[0] + "</title>"
    assert "&lt;script&gt;document.title" in hostile_dom  # shown as text, never run
    screenshot = tmp_path / "register.png"
    browse(
        out / "changes" / f"{ids['sfc-press-tc:new']}.html"
        if "sfc-press-tc:new" in ids
        else out / "index.html",
        tmp_path,
        screenshot,
    )
    assert screenshot.stat().st_size > 10_000


def browse(page, tmp_path, screenshot=None) -> str:
    """The DOM headless Chromium renders (scripts run), or a screenshot of the page."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]  # fmt: skip
    command += [f"--screenshot={screenshot}", "--window-size=1200,900"] if screenshot else ["--dump-dom"]
    result = subprocess.run([*command, page.as_uri()], capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
