"""End to end: the CLI against a local regulator site over HTTP, with a real SQLite state file."""

from __future__ import annotations

import gzip
import json
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor import channel as monitor_channel
from monitor.answers import retry_after_seconds
from monitor.localsite import Response
from monitor.normalize import HKT
from tests.conftest import FSTB_LISTING, REGISTER, ROUND2, SFC_PRESS, rss_source, run_cli

SFC_CIRCULARS = rss_source("sfc-circulars-en", "/sfc/en/rss/circulars.xml")
HKMA_CIRCULARS = rss_source("hkma-circulars-en", "/hkma/eng/rss/circulars.xml")
HKMA_PRESS = rss_source("hkma-press-en", "/hkma/eng/rss/press-release.xml")
ALL = (SFC_PRESS, SFC_CIRCULARS, HKMA_PRESS, HKMA_CIRCULARS, FSTB_LISTING, REGISTER)


def rows(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_demo_prints_the_alerts_of_its_second_round():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Round 1: baseline recorded for 8 of 8 sources (no alerts on a first run)." in out
    # The English and Chinese feeds share the reference number 26PR127: one release, one alert,
    # from whichever of the two feeds (polled at the same time) was stored first.
    english = "NEW: SFC and HKMA issue joint circular on distribution of licensed stablecoins" in out
    chinese = "NEW: 證監會與金管局就向零售投資者分銷持牌穩定幣發出聯合通函" in out
    assert english != chinese
    assert "NEW: HKMA announces next phase of Project e-HKD+ and tokenised deposit pilots" in out
    assert "NEW: 財經事務及庫務局歡迎《穩定幣條例》修訂生效" in out
    assert "+ Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out
    assert "OTC Derivatives Regulatory Regime" not in out  # derivatives, but not crypto
    assert "6 alerts; 3 more changes logged without an alert" in out


def test_first_round_is_silent_and_the_second_alerts_once(monitor, capsys):
    monitor.write(*ALL)
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert rows(monitor.db, "SELECT count(DISTINCT source_id) FROM items") == [(5,)]

    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0
    headers = [line for line in out.splitlines() if line.startswith("== ")]
    assert len(headers) == 5  # SFC press, SFC circulars, HKMA press, FSTB listing, the register
    assert (
        "== SFC · derivatives, virtual-assets ==============================\n"
        "NEW: Circular to licensed virtual asset trading platform operators on offering virtual asset derivatives to professional investors\n"
        "Date:    2026-08-03 17:18 HKT\n"
        "Link:    https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/doc?refNo=26EC46\n"
        "Matched: derivatives (virtual asset derivative, derivative, virtual asset); "
        "virtual-assets (virtual asset, virtual asset trading platform)\n"
    ) in out
    logged = rows(monitor.db, "SELECT source_id, kind, topics FROM changes ORDER BY source_id, id")
    assert ("sfc-circulars-en", "new", "[]") in logged  # the OTC derivatives circular: logged, no alert
    assert not any(kind == "removed" for _, kind, _ in logged)  # 26PR115 rolled off the feed
    assert not any(source == "hkma-circulars-en" for source, _, _ in logged)  # PDF size + ?rev= only

    bodies_before = rows(monitor.db, "SELECT count(*) FROM bodies")
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(len(logged),)]
    assert rows(monitor.db, "SELECT count(*) FROM bodies") == bodies_before  # nothing new stored
    assert rows(monitor.db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)]


def test_page_change_alert_shows_the_added_line(monitor, capsys):
    monitor.write(REGISTER)
    monitor.round(capsys)
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0
    assert out.startswith(
        "== HKMA · stablecoin, virtual-assets ==============================\n"
        "PAGE CHANGED: Register of Licensed Stablecoin Issuers - Hong Kong Monetary Authority\n"
        f"Link:    {monitor.site.base_url}/hkma/eng/stablecoin-register.html\n"
        "Matched: stablecoin (stablecoin, stablecoin issuer); virtual-assets (stablecoin)\n"
        "  + Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003 | 31 July 2026 | "
    )


def test_log_and_show_read_the_change_log(monitor, capsys):
    monitor.write(SFC_PRESS, REGISTER)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    code, out, _ = monitor("log", capsys=capsys)
    assert code == 0 and "ID  DETECTED (HKT)" in out and "stablecoin" in out
    code, out, _ = monitor(
        "log", "--format", "json", "--topic", "stablecoin", "--source", "sfc-press-en", capsys=capsys
    )
    (entry,) = json.loads(out)
    assert entry["title"].startswith("SFC and HKMA issue joint circular")
    assert entry["kind"] == "new" and entry["regulator"] == "SFC"
    code, out, _ = monitor("log", "--format", "csv", capsys=capsys)
    assert out.splitlines()[0] == "id,detected_at,regulator,source_id,kind,topics,state,title,link,date"

    page_change = rows(monitor.db, "SELECT id FROM changes WHERE kind = 'page'")[0][0]
    code, out, _ = monitor("show", str(page_change), capsys=capsys)
    assert code == 0
    assert "Regulator: HKMA" in out and "Topics:    stablecoin (stablecoin, stablecoin issuer)" in out
    assert "+Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003" in out
    assert "Raw body:  sha256 " in out and "Snapshot:  " in out

    code, _, err = monitor("show", "999", capsys=capsys)
    assert code == 2 and err == "error: no change with id 999 (see `policy-monitor log`)\n"


BROKEN = [
    ("down", "/down", "HTTP 503 Service Unavailable"),
    ("slow", "/slow", "timed out after 1s"),
    ("loop", "/redirect-loop", "too many redirects (more than 5; a redirect loop?)"),
    ("soft404", "/soft-404", 'soft 404: HTTP 200 but the page title is "Page Not Found - SFC"'),
    ("truncated", "/truncated-feed", "malformed feed"),
    ("image", "/image", "unexpected content type image/png"),
    ("huge", "/huge", "body larger than"),
    ("missing", "/no-such-page.xml", "HTTP 404 Not Found"),
]


def test_each_misbehaving_source_fails_alone_with_a_reason(monitor, capsys):
    kinds = {"soft404": "page", "huge": "page"}
    broken = [
        f'[[sources]]\nid = "{name}"\nregulator = "SFC"\nkind = "{kinds.get(name, "rss")}"\nurl = "{{base}}{path}"\n'
        for name, path, _ in BROKEN
    ]
    monitor.write(SFC_PRESS, *broken)
    code, out, err = monitor.round(capsys)
    assert code == 1
    assert out == ""
    failures = dict(rows(monitor.db, "SELECT source_id, error FROM fetches WHERE status = 'error'"))
    for name, _, reason in BROKEN:
        assert reason in failures[name], name
        assert f"source {name} failed: {reason}" in err
    assert rows(monitor.db, "SELECT status FROM fetches WHERE source_id = 'sfc-press-en'") == [("baseline",)]
    assert "Traceback" not in err


def test_unreachable_host_fails_with_a_reason_and_exit_1(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "sources.toml"
    config.write_text(
        '[settings]\ntimeout = 1\nretries = 0\n[topics.stablecoin]\nterms = ["stablecoin"]\n'
        + rss_source("sfc-press-en", "/feed").replace("{base}", f"http://127.0.0.1:{port}"),
        encoding="utf-8",
    )
    result = run_cli("--config", str(config), "--db", str(tmp_path / "m.db"), "run", "--once")
    assert result.returncode == 1
    # `run` logs to stdout, one line per source, as a container's log collector expects
    assert "source sfc-press-en failed: connection failed: ConnectError" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_layout_change_is_an_error_and_keeps_the_old_snapshot(monitor, capsys):
    monitor.write(FSTB_LISTING)
    monitor.round(capsys)
    original = monitor.site.serve_file("/fstb/tc/press-releases.htm")
    redesigned = original.body.replace(b'class="press-item"', b'class="news-row"')
    monitor.site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(
        200, redesigned, {"Content-Type": "text/html"}
    )
    code, out, err = monitor.round(capsys)
    assert code == 1 and out == ""
    assert "matched nothing (layout changed?)" in err
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert rows(monitor.db, "SELECT consecutive_failures FROM health") == [(1,)]

    del monitor.site.routes["/fstb/tc/press-releases.htm"]  # the site is fixed: no false "new" items
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert rows(monitor.db, "SELECT consecutive_failures FROM health") == [(0,)]


def test_429_with_retry_after_is_retried(monitor, capsys):
    calls = []

    def busy_then_fine(handler):
        calls.append(1)
        if len(calls) == 1:
            return Response(429, b"slow down", {"Retry-After": "0"})
        return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

    monitor.site.routes["/busy.xml"] = busy_then_fine
    monitor.write(rss_source("sfc-press-en", "/busy.xml"))
    code, _, _ = monitor.round(capsys)
    assert code == 0 and len(calls) == 2
    assert rows(monitor.db, "SELECT status FROM fetches") == [("baseline",)]


def test_conditional_get_uses_the_etag(monitor, capsys):
    def with_etag(handler):
        if handler.headers.get("If-None-Match") == '"v1"':
            return Response(304, b"", {"ETag": '"v1"'})
        page = monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
        return Response(200, page.body, {**page.headers, "ETag": '"v1"'})

    monitor.site.routes["/etag.xml"] = with_etag
    monitor.write(rss_source("sfc-press-en", "/etag.xml"))
    monitor.round(capsys)
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")
    assert rows(monitor.db, "SELECT status, http_status FROM fetches ORDER BY id") == [
        ("baseline", 200),
        ("not_modified", 304),
    ]


def test_big5_page_labelled_utf8_still_reads_as_chinese(monitor, capsys):
    monitor.write(FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/big5-labelled-utf8"))
    code, _, _ = monitor.round(capsys)
    assert code == 0
    titles = [t for (t,) in rows(monitor.db, "SELECT title FROM items")]
    assert "《2026年保險業（修訂）條例草案》刊憲" in titles


def test_a_big5_page_served_as_iso_8859_1_reads_as_its_meta_says(monitor, capsys):
    """A server's default label over the page's own <meta charset=big5>: the new release alerts, and
    no title "changes" to mojibake and back."""
    label = {"content_type": "text/html; charset=big5"}

    def listing(handler):
        page = monitor.site.serve_file("/fstb/tc/press-releases.htm")
        return Response(200, page.body, {"Content-Type": label["content_type"]})

    monitor.site.routes["/fstb/tc/press-releases.htm"] = listing
    monitor.write(FSTB_LISTING)
    monitor.round(capsys)
    label["content_type"] = "text/html; charset=ISO-8859-1"
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0 and "NEW: 財經事務及庫務局歡迎《穩定幣條例》修訂生效" in out
    label["content_type"] = "text/html"
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "CHANGED" not in out
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("new", "財經事務及庫務局歡迎《穩定幣條例》修訂生效")
    ]


def test_a_feed_read_under_a_wrong_label_is_read_again_once_the_label_is_right(monitor, capsys):
    """A Big5 feed with no declaration of its own, labelled ISO-8859-1 the round it gained an item:
    once the label is right again, the same bytes are read again, and the titles are Chinese again."""

    def feed(*titles: str) -> bytes:
        items = "".join(
            f"<item><title>{title}</title><link>https://www.fstb.gov.hk/tc/{title[-2:]}.htm</link></item>"
            for title in titles
        )
        return f"<rss version='2.0'><channel><title>新聞公報</title>{items}</channel></rss>".encode("big5")

    served = {"body": feed("立法會會議"), "content_type": "application/rss+xml; charset=big5"}
    monitor.site.routes["/fstb.xml"] = lambda h: Response(
        200, served["body"], {"Content-Type": served["content_type"]}
    )
    monitor.write(rss_source("fstb-rss-tc", "/fstb.xml"))
    monitor.round(capsys)
    served["body"] = feed("財經事務及庫務局歡迎《穩定幣條例》修訂生效", "立法會會議")
    served["content_type"] = "application/rss+xml; charset=ISO-8859-1"
    monitor.round(capsys)  # read as ISO-8859-1: mojibake
    served["content_type"] = "application/rss+xml; charset=big5"
    assert monitor.round(capsys)[0] == 0
    titles = {t for (t,) in rows(monitor.db, "SELECT title FROM items WHERE present = 1")}
    assert titles == {"財經事務及庫務局歡迎《穩定幣條例》修訂生效", "立法會會議"}


def test_dry_run_prints_alerts_and_stores_nothing(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.site.root = ROUND2
    code, out, err = monitor("run", "--once", "--dry-run", "--all", capsys=capsys)
    assert code == 0 and "NEW: SFC and HKMA issue joint circular" in out
    assert "Source:  sfc-press-en · dry run, not stored · detected" in out  # no change #0 to `show`
    assert "dry run (nothing stored or sent): 1 of 1 sources polled, 0 failed, 1 changes, 1 alerts" in err
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert rows(monitor.db, "SELECT count(*) FROM fetches") == [(1,)]
    code, out, _ = monitor.round(capsys)  # the real run still alerts
    assert "NEW: SFC and HKMA issue joint circular" in out


def test_dry_run_on_a_fresh_database_creates_no_file(monitor, capsys):
    monitor.write(SFC_PRESS)
    code, out, err = monitor("run", "--once", "--dry-run", capsys=capsys)
    assert (code, out) == (0, "")
    assert not monitor.db.exists()
    assert (  # a mistyped --db must not read as "nothing would alert"
        f"dry run: no state database at {monitor.db}: every source is new to it, and a first round "
        "only records a baseline, so it shows no alert"
    ) in err


def test_alerts_survive_a_crash_between_commit_and_printing(monitor, capsys, monkeypatch):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)

    def crash(*args):
        raise KeyboardInterrupt  # the process is stopped right after the round's commit

    monkeypatch.setattr(monitor_channel, "deliver_console", crash)
    monitor.round(capsys, ROUND2)
    assert rows(monitor.db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(1,)]
    monkeypatch.undo()
    code, out, _ = monitor("run", "--once", capsys=capsys)  # nothing is due: only the outbox is sent
    assert code == 0 and out.count("NEW: SFC and HKMA issue joint circular") == 1
    code, out, _ = monitor("run", "--once", capsys=capsys)
    assert out == ""


def test_check_prints_items_and_writes_nothing(monitor, capsys):
    monitor.write(FSTB_LISTING)
    code, out, _ = monitor("check", "fstb-press-tc", capsys=capsys)
    assert code == 0
    assert "2026-07-30           《2026年保險業（修訂）條例草案》刊憲" in out
    assert f"6 items from {monitor.site.base_url}/fstb/tc/press-releases.htm" in out
    assert not monitor.db.exists()
    code, _, err = monitor("check", "nope", capsys=capsys)
    assert code == 2 and "no source 'nope'" in err


def test_only_due_sources_are_polled(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor("run", "--once", capsys=capsys)
    monitor("run", "--once", capsys=capsys)  # 15 min interval: not due again yet
    assert rows(monitor.db, "SELECT count(*) FROM fetches") == [(1,)]


@pytest.mark.parametrize("command", [["log"], ["show", "1"]])
def test_reading_commands_on_an_empty_database(monitor, capsys, command):
    monitor.write(SFC_PRESS)
    code, out, err = monitor(*command, capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: no state database at {monitor.db} yet (policy-monitor run --once creates it)\n"
    assert not monitor.db.exists()


def test_due_sources_retries_failed_sources_sooner():
    from datetime import UTC, datetime, timedelta

    from monitor.models import Health, Source
    from monitor.schedule import due_sources

    now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    ago = (now - timedelta(minutes=6)).isoformat()
    hourly = [Source(i, "SFC", "rss", "https://x/" + i, (), 3600) for i in ("ok", "failing", "new")]
    health = {"ok": Health("ok", 0, ago, ago), "failing": Health("failing", 2, ago, "", "HTTP 503", ago)}
    assert [s.id for s in due_sources(hourly, health, now)] == ["failing", "new"]
    stepped_back = {"ok": Health("ok", 0, (now + timedelta(hours=1)).isoformat())}
    assert [s.id for s in due_sources(hourly[:1], stepped_back, now)] == ["ok"]  # clock went back


def test_a_source_whose_turn_at_its_host_came_late_is_due_at_the_next_cron_tick():
    """Cron runs `run --once` every 30 minutes: a source that waited 8 s for its host's other
    sources was dated 8 s late, and polled an hour after the last, not 30 minutes."""
    from datetime import UTC, datetime, timedelta

    from monitor.models import Health, Source
    from monitor.schedule import due_sources

    tick = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    sources = [
        Source(i, "HKMA", "rss", "https://www.hkma.gov.hk/" + i, (), 1800)
        for i in ("head", "waited", "recent")
    ]
    health = {
        "head": Health("head", 0, (tick - timedelta(minutes=30, seconds=-1)).isoformat()),
        "waited": Health("waited", 0, (tick - timedelta(minutes=30, seconds=-8)).isoformat()),
        "recent": Health("recent", 0, (tick - timedelta(minutes=20)).isoformat()),  # not due for 10 min
    }
    assert [s.id for s in due_sources(sources, health, tick)] == ["head", "waited"]
    # Cron every minute: a five-minute source polled at a tick is not due one tick early.
    five = [Source("five", "HKMA", "rss", "https://www.hkma.gov.hk/five", (), 300)]
    polled = {"five": Health("five", 0, (tick - timedelta(minutes=4, seconds=0.4)).isoformat())}
    assert due_sources(five, polled, tick) == []


def test_5xx_is_retried_and_4xx_is_not(monitor, capsys):
    monitor.write(rss_source("down", "/down"), rss_source("missing", "/missing.xml"))
    monitor.round(capsys)
    paths = [path for path, _ in monitor.site.requests]
    assert paths.count("/down") == 2  # the first attempt and `retries = 1` more
    assert paths.count("/missing.xml") == 1


def test_retry_after_is_honoured(monitor, capsys):
    times = []

    def busy_once(handler):
        times.append(time.monotonic())
        if len(times) == 1:
            return Response(429, b"", {"Retry-After": "1"})
        return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

    monitor.site.routes["/busy.xml"] = busy_once
    monitor.write(rss_source("sfc-press-en", "/busy.xml"))
    config = monitor.config.read_text().replace("max_retry_after = 0.5", "max_retry_after = 1.5")
    monitor.config.write_text(config)
    assert monitor.round(capsys)[0] == 0
    assert times[1] - times[0] >= 0.95  # a longer Retry-After fails at once: tests/faults


def test_a_source_waiting_to_retry_does_not_hold_up_its_host(monitor, capsys):
    """Two sources asked to come back in a second (429) are first in line on their host; the
    others are polled meanwhile, never more than per_host at once."""
    served: list[tuple[str, float]] = []
    active, peak = [0], [0]

    def serve(name: str, throttled: bool):
        def handler(_):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            served.append((name, time.monotonic()))
            time.sleep(0.05)
            active[0] -= 1
            if throttled and [n for n, _ in served].count(name) == 1:
                return Response(429, b"", {"Retry-After": "1"})
            return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

        return handler

    names = [f"busy-{i}" for i in range(2)] + [f"feed-{i}" for i in range(12)]
    for name in names:
        monitor.site.routes[f"/{name}.xml"] = serve(name, name.startswith("busy"))
    monitor.write(*(rss_source(name, f"/{name}.xml") for name in names))
    config = monitor.config.read_text().replace("max_retry_after = 0.5", "max_retry_after = 1.5")
    monitor.config.write_text(config)
    assert monitor.round(capsys)[0] == 0
    retried = min(t for (n, t) in served[2:] if n.startswith("busy"))  # the second requests
    assert max(t for n, t in served if n.startswith("feed")) < retried  # all polled during the wait
    assert peak[0] == 2


def test_retry_after_as_an_http_date():
    assert retry_after_seconds("Wed, 25 Nov 2026 01:00:00 -0000") == 0.0  # in the past, a zone-less date
    assert (
        0 < retry_after_seconds(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)) <= 30
    )


def test_a_listing_whose_every_link_changes_is_a_layout_error_not_a_flood(monitor, capsys):
    monitor.write(FSTB_LISTING)
    monitor.round(capsys)
    page = monitor.site.serve_file("/fstb/tc/press-releases.htm").body
    relinked = page.replace(b'href="/tc/press/', b'href="/tc/news/')
    monitor.site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(
        200, relinked, {"Content-Type": "text/html"}
    )
    for _ in range(3):
        code, out, err = monitor.round(capsys)
        assert code == 1
        assert "none of the 6 items listed before is listed now (layout or link format changed?)" in err
    assert out == (  # the third failure in a row: one health notice
        "== Source health ================================================\n"
        "Source fstb-press-tc has failed 3 times in a row: none of the 6 items listed before is listed now "
        "(layout or link format changed?); the old snapshot is kept\n\n"
    )
    code, out, _ = monitor.round(capsys)  # the fourth time running, it is taken as the new normal
    assert code == 0 and out.endswith("Source fstb-press-tc has recovered after 3 failed attempts.\n\n")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


def test_a_release_published_with_a_new_link_format_is_still_alerted(monitor, capsys):
    monitor.write(FSTB_LISTING)
    monitor.round(capsys)
    page = monitor.site.serve_file("/fstb/tc/press-releases.htm").body
    news = '<tr class="press-item"><td class="date">2026年8月3日</td><td class="title"><a href="/tc/press/2026/pr20260803.htm">財經事務及庫務局公布穩定幣發牌指引</a></td></tr>'
    relinked = page.replace(
        b'<tr class="press-item">', news.encode("big5hkscs") + b'<tr class="press-item">', 1
    )
    relinked = relinked.replace(b'href="/tc/press/', b'href="/tc/news/')  # the site's new link format
    monitor.site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(
        200, relinked, {"Content-Type": "text/html"}
    )
    for _ in range(3):
        code, _, err = monitor.round(capsys)
        assert code == 1 and "none of the 6 items listed before is listed now" in err
    code, out, _ = monitor.round(capsys)  # taken as the new normal: the 6 are found again by title
    assert code == 0
    assert "NEW: 財經事務及庫務局公布穩定幣發牌指引" in out
    assert out.count("NEW: ") == 1 and "REMOVED" not in out
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("new", "財經事務及庫務局公布穩定幣發牌指引")
    ]


def test_check_of_a_failing_source_names_it_and_exits_1(monitor, capsys):
    monitor.write(rss_source("sfc-press-en", "/down"))
    code, out, err = monitor("check", "sfc-press-en", capsys=capsys)
    assert code == 1 and out == ""
    assert "error: sfc-press-en: HTTP 503 Service Unavailable" in err


def test_log_into_a_closed_pipe_is_quiet(monitor, capsys):
    monitor.write(*ALL)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    command = f"{sys.executable} -m monitor --config {monitor.config} --db {monitor.db} log | head -1"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith("   ID  DETECTED (HKT)")
    assert "Traceback" not in result.stderr


def test_log_since_is_a_hong_kong_day(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    today = datetime.now(HKT).date()
    code, out, _ = monitor("log", "--since", today.isoformat(), "--format", "json", capsys=capsys)
    assert code == 0 and len(json.loads(out)) == 1
    code, out, _ = monitor(
        "log", "--since", (today + timedelta(days=1)).isoformat(), "--format", "json", capsys=capsys
    )
    assert json.loads(out) == []
    code, _, err = monitor("log", "--since", "2026-13-45", capsys=capsys)
    assert code == 2 and "--since '2026-13-45': expected a date like 2026-07-01" in err


def test_conditional_get_uses_last_modified(monitor, capsys):
    stamp = "Wed, 25 Nov 2026 01:00:00 GMT"

    def with_last_modified(handler):
        if handler.headers.get("If-Modified-Since") == stamp:
            return Response(304)
        page = monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
        return Response(200, page.body, {**page.headers, "Last-Modified": stamp})

    monitor.site.routes["/lm.xml"] = with_last_modified
    monitor.write(rss_source("sfc-press-en", "/lm.xml"))
    monitor.round(capsys)
    monitor.round(capsys)
    assert rows(monitor.db, "SELECT status FROM fetches ORDER BY id") == [("baseline",), ("not_modified",)]


def test_a_gzip_bomb_hits_the_size_cap(monitor, capsys):
    bomb = gzip.compress(b"<html>" + b" " * 5_000_000 + b"</html>")  # 5 MB from ~5 KB
    headers = {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    monitor.site.routes["/bomb.html"] = lambda h: Response(200, bomb, headers)
    monitor.write(REGISTER.replace("/hkma/eng/stablecoin-register.html", "/bomb.html"))
    code, _, err = monitor.round(capsys)
    assert code == 1 and "body larger than 200,000 bytes" in err


def counting(monitor):
    """A route serving the SFC feed in 0.2 s, and the most requests it has seen at once."""
    active, peak = [0], [0]

    def counted(handler):
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        active[0] -= 1
        return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

    return counted, peak


def test_at_most_two_requests_at_once_to_one_host(monitor, capsys):
    counted, peak = counting(monitor)
    for i in range(6):
        monitor.site.routes[f"/feed{i}.xml"] = counted
    monitor.write(*(rss_source(f"feed-{i}", f"/feed{i}.xml") for i in range(6)))
    started = time.monotonic()
    assert monitor.round(capsys)[0] == 0
    assert peak[0] == 2  # per_host = 2: polite to the regulator, but not one at a time
    assert time.monotonic() - started < 6 * 0.2


@pytest.mark.parametrize("in_all, peak_seen", [(64, 4), (1, 1)], ids=["default", "one-in-all"])
def test_requests_in_all_are_bounded_whatever_the_hosts(monitor, capsys, monkeypatch, in_all, peak_seen):
    """per_host = 2 on two hosts: four requests at once, unless the fetcher's cap in all is lower."""
    from monitor import fetch

    monkeypatch.setattr(fetch, "MAX_CONNECTIONS", in_all)
    counted, peak = counting(monitor)
    for i in range(6):
        monitor.site.routes[f"/feed{i}.xml"] = counted
    near = [rss_source(f"near-{i}", f"/feed{i}.xml") for i in range(3)]
    far = [rss_source(f"far-{i}", f"/feed{i + 3}.xml").replace("{base}", "{far}") for i in range(3)]
    monitor.write(*near, *far)
    far_base = monitor.site.base_url.replace("127.0.0.1", "localhost")
    monitor.config.write_text(monitor.config.read_text(encoding="utf-8").replace("{far}", far_base))
    assert monitor.round(capsys)[0] == 0
    assert peak[0] == peak_seen


def test_config_and_database_from_the_environment(monitor, capsys, tmp_path):
    monitor.write(SFC_PRESS)
    env = {"MONITOR_CONFIG": str(monitor.config), "MONITOR_DB": str(tmp_path / "elsewhere.db")}
    result = run_cli("run", "--once", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert rows(tmp_path / "elsewhere.db", "SELECT status FROM fetches") == [("baseline",)]


def test_a_release_in_both_languages_counts_as_one_alert_in_the_log(monitor, capsys):
    monitor.write(SFC_PRESS, rss_source("sfc-press-tc", "/sfc/tc/rss/press-releases.xml"))
    monitor.round(capsys)
    code, out, err = monitor.round(capsys, ROUND2)
    assert code == 0 and out.count("NEW: ") == 1  # the English alert, naming the Chinese copy
    assert "round: 2 of 2 sources polled, 0 failed, 2 changes, 1 alerts" in err


def test_a_failed_attempt_is_dated_when_it_began_not_after_its_retries(monitor, capsys):
    """Its retry is due 5 minutes after it began: dated after a minute of timeouts and retries, it
    missed the next cron tick and was retried after 10."""

    def slow_failure(handler):
        time.sleep(1.2)
        return Response(503)

    monitor.site.routes["/slow-503.xml"] = slow_failure
    monitor.write(rss_source("slow", "/slow-503.xml"))  # retries = 1: two slow answers
    began = datetime.now(UTC).replace(microsecond=0)
    assert monitor.round(capsys)[0] == 1
    with sqlite3.connect(monitor.db) as conn:
        (attempted,) = conn.execute("SELECT last_attempt_at FROM health").fetchone()
        (failed,) = conn.execute("SELECT fetched_at FROM fetches WHERE status = 'error'").fetchone()
    assert datetime.fromisoformat(attempted) <= began + timedelta(seconds=1)
    assert datetime.fromisoformat(failed) >= began + timedelta(seconds=2)
