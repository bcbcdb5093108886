"""Every source fault of issue #7, injected into the local regulator site.

A fault the monitor cannot read through makes that source fail with a one-line reason, while the
round goes on for the other sources; nothing false enters the change log (no "removed", no "new");
after three failures in a row the user gets one source-health alert, and one when it recovers.
A fault it can read through (a wrong charset label, sloppy HTML, a short burst of 5xx) is read
correctly and changes nothing.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import os
import re
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import zstandard

from monitor import guards
from monitor.localsite import LocalSite, Response
from tests.conftest import ROUND2, SFC_PRESS
from tests.faults.conftest import FAULT_SETTINGS, rows, write_config

FAULTY = "faulty"
HKMA_FEED = "/hkma/eng/rss/press-release.xml"
FSTB_PAGE = "/fstb/tc/press-releases.htm"
LISTING = """[[sources]]
id = "faulty"
regulator = "FSTB"
kind = "html"
url = "{base}/faulty"
items = "table.press-list tr.press-item"
title = "td.title"
link = "td.title a"
date = "td.date"
"""
FEED = '[[sources]]\nid = "faulty"\nregulator = "HKMA"\nkind = "rss"\nurl = "{base}/faulty"\n'
MB = 1024 * 1024
FIFTY_MB = b"<html>" + b"x" * (50 * MB) + b"</html>"
# 100 MB of spaces compress to ~100 KB: a bomb ten times the 10 MB cap.
BOMB = gzip.compress(b"<rss>" + b" " * (100 * MB) + b"</rss>", compresslevel=6)
# zstd is refused before a byte is inflated: 20 MB shows it as well as 2 GB would.
ZSTD_BOMB = zstandard.ZstdCompressor(level=3).compress(b" " * (20 * MB))
# Gzip of gzip: httpx would inflate the inner layer in one call. 3.5 KB of this is 2 GB; the
# 100 MB version here is enough, since the answer is refused before a byte is inflated.
NESTED_BOMB = gzip.compress(gzip.compress(b" " * (100 * MB), compresslevel=9), compresslevel=9)

Route = Callable[[object], Response | None]


def feed_of(count: int) -> bytes:
    items = "".join(
        f"<item><title>Notice {n} on bank supervision</title><guid>26N{n:03d}</guid>"
        f"<link>https://www.hkma.gov.hk/notice/{n}</link></item>"
        for n in range(count, 0, -1)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title>{items}</channel></rss>'.encode()


def rss(body: bytes) -> Response:
    return Response(200, body, {"Content-Type": "application/rss+xml; charset=utf-8"})


def utf8_listing(site: LocalSite) -> str:
    """The FSTB's Big5 listing as text (its items are what every charset variant must yield)."""
    return site.serve_file(FSTB_PAGE).body.decode("big5hkscs")


def reset_mid_body(body: bytes) -> Route:
    """Headers promising the whole body, half of it, then a TCP reset."""

    def route(handler) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {len(body)}\r\n\r\n"
        handler.wfile.write(head.encode() + body[: len(body) // 2])
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.rfile.close()
            handler.connection.close()

    return route


def unsized(body: bytes) -> Route:
    """A body with no Content-Length (read until the server closes): the cap must stop the read."""

    def route(handler) -> None:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n")
            for start in range(0, len(body), MB):
                handler.wfile.write(body[start : start + MB])

    return route


def slow(body: bytes) -> Route:
    def route(handler) -> Response:
        time.sleep(1.0)  # over the 0.3 s timeout
        return rss(body)

    return route


@dataclass(frozen=True)
class Fault:
    id: str
    source: str  # the faulty source's [[sources]] block
    healthy: Callable[[LocalSite], Response]
    broken: Callable[[LocalSite, Response], Route]  # (site, the healthy answer) -> the faulty route
    reason: str  # how the one-line error starts

    def __str__(self) -> str:
        return self.id


def feed(site: LocalSite) -> Response:
    return site.serve_file(HKMA_FEED)


def listing(site: LocalSite) -> Response:
    return site.serve_file(FSTB_PAGE)


def fixed(response: Response) -> Route:
    return lambda handler: response


# fmt: off
FAILING = [
    Fault("timeout", FEED, feed, lambda s, ok: slow(ok.body), "timed out after 0.3s"),
    Fault("reset-mid-body", FEED, feed, lambda s, ok: reset_mid_body(ok.body), "connection failed: ReadError: the connection broke while the answer was being read"),
    Fault("5xx-burst", FEED, feed, lambda s, ok: fixed(Response(503, b"<html>busy</html>")),
          "HTTP 503 Service Unavailable"),
    Fault("429-retry-after", FEED, feed, lambda s, ok: fixed(Response(429, b"", {"Retry-After": "3600"})),
          "HTTP 429 Too Many Requests (Retry-After 3600s: longer than max_retry_after, not retried now)"),
    Fault("redirect-loop", FEED, feed, lambda s, ok: fixed(Response(302, b"", {"Location": "/faulty"})),
          "too many redirects (more than 5; a redirect loop?)"),
    Fault("redirect-to-another-host", FEED, feed,
          lambda s, ok: fixed(Response(302, b"", {"Location": s.base_url.replace("127.0.0.1", "localhost") + HKMA_FEED})),
          "redirected to another site: http://localhost:"),
    Fault("soft-404", LISTING, listing,
          lambda s, ok: fixed(Response(200, b"<html><head><title>Page Not Found</title></head><body>Sorry</body></html>",
                                       {"Content-Type": "text/html"})),
          'soft 404: HTTP 200 but the page title is "Page Not Found"'),
    Fault("empty-200", FEED, feed, lambda s, ok: fixed(rss(b"")), "empty response (HTTP 200 with no content)"),
    Fault("truncated-feed", FEED, feed, lambda s, ok: fixed(rss(ok.body[: len(ok.body) // 2])), "malformed feed: "),
    Fault("50-mb-body", LISTING, listing, lambda s, ok: fixed(Response(200, FIFTY_MB, {"Content-Type": "text/html"})),
          "body larger than 10 MB (raise [settings] max_bytes if this is expected)"),
    Fault("50-mb-body-unsized", LISTING, listing, lambda s, ok: unsized(FIFTY_MB), "body larger than 10 MB"),
    Fault("gzip-bomb", FEED, feed,
          lambda s, ok: fixed(Response(200, BOMB, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})),
          "body larger than 10 MB"),
    Fault("nested-gzip-bomb", FEED, feed,
          lambda s, ok: fixed(Response(200, NESTED_BOMB, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip, gzip"})),
          "refused a body compressed 2 times over (gzip, gzip)"),
    Fault("zstd-bomb", FEED, feed,  # 64 KB can be 2 GB: httpx would inflate a whole read before the cap
          lambda s, ok: fixed(Response(200, ZSTD_BOMB, {"Content-Type": "application/rss+xml", "Content-Encoding": "zstd"})),
          "refused a body compressed with zstd, which was not asked for"),
    Fault("layout-changed", LISTING, listing,
          lambda s, ok: fixed(Response(200, ok.body.replace(b'class="press-item"', b'class="news-row"'), ok.headers)),
          "items selector 'table.press-list tr.press-item' matched nothing (layout changed?)"),
    Fault("html-beyond-repair", LISTING, listing,
          lambda s, ok: fixed(Response(200, bytes(range(256)) * 40, {"Content-Type": "text/html"})),
          "items selector 'table.press-list tr.press-item' matched nothing (layout changed?)"),
    Fault("maintenance-page", LISTING, listing,
          lambda s, ok: fixed(Response(200, b"<html><head><title>System Maintenance</title></head><body>We will be back "
                                            b"at 08:00</body></html>", {"Content-Type": "text/html"})),
          'not the page: HTTP 200 but its title is "System Maintenance" (maintenance, sign-in or bot check?)'),
    Fault("206-unasked", FEED, feed,
          lambda s, ok: fixed(Response(206, ok.body[: len(ok.body) // 2], {"Content-Type": "application/rss+xml"})),
          "HTTP 206 Partial Content, though the whole page was asked for"),
    Fault("cut-short-unsized", LISTING, listing, lambda s, ok: unsized(ok.body[: len(ok.body) * 2 // 3]),
          "the answer ended before </html> and gave no length (cut short?)"),
    Fault("304-unasked", FEED, feed, lambda s, ok: fixed(Response(304, b"")),
          "HTTP 304 Not Modified, though the request named no version it has"),
    Fault("gzip-unlabelled", LISTING, listing,
          lambda s, ok: fixed(Response(200, gzip.compress(ok.body), {"Content-Type": "text/html"})),
          "the body is gzip data the server did not label (no Content-Encoding: gzip)"),
    Fault("1-of-50-items", FEED, lambda s: rss(feed_of(50)), lambda s, ok: fixed(rss(feed_of(1))),
          "suspicious: the listing holds 1 of the 50 items it held before (a partial answer?); the old snapshot is kept"),
]
# fmt: on


@pytest.mark.parametrize("fault", FAILING, ids=str)
def test_a_failing_source_fails_alone_alerts_once_and_recovers(monitor, capsys, fault):
    site = monitor.site
    healthy = fault.healthy(site)
    site.routes["/faulty"] = fixed(healthy)
    write_config(monitor, SFC_PRESS, fault.source)
    assert monitor.round(capsys)[:2] == (0, "")  # baseline: silent
    assert {headers.get("Accept-Encoding") for _, headers in site.requests} == {"gzip, deflate"}

    site.root = ROUND2  # the other source has news this round: it must still be alerted
    site.routes["/faulty"] = fault.broken(site, healthy)
    outs = []
    for _ in range(3):
        code, out, err = monitor.round(capsys)
        assert code == 1, err
        (line,) = [line for line in err.splitlines() if line.startswith(f"source {FAULTY} failed: ")]
        assert line.startswith(f"source {FAULTY} failed: {fault.reason}"), line
        assert "Traceback" not in err and "sfc-press-en failed" not in err
        outs.append(out)
    assert "NEW: SFC and HKMA issue joint circular" in outs[0]  # the round went on
    assert outs[1] == ""
    reason = line.removeprefix(f"source {FAULTY} failed: ").rsplit(" (", 1)[0]  # without "(12 ms)"
    assert outs[2] == f"== Source health {'=' * 48}\nSource faulty has failed 3 times in a row: {reason}\n\n"

    site.routes["/faulty"] = fixed(healthy)
    code, out, err = monitor.round(capsys)
    assert code == 0, err
    assert out == f"== Source health {'=' * 48}\nSource faulty has recovered after 3 failed attempts.\n\n"

    assert rows(monitor.db, "SELECT source_id, kind FROM changes") == [("sfc-press-en", "new")]
    statuses = rows(monitor.db, "SELECT status FROM fetches WHERE source_id = ? ORDER BY id", (FAULTY,))
    assert [s for (s,) in statuses] == ["baseline", "error", "error", "error", "unchanged"]
    errors = rows(monitor.db, "SELECT error FROM fetches WHERE source_id = ? AND status = 'error'", (FAULTY,))
    assert all(e.startswith(fault.reason) and "\n" not in e for (e,) in errors)
    assert monitor.round(capsys)[:2] == (0, "")  # and nothing more


def test_a_5xx_burst_shorter_than_the_retries_is_absorbed(monitor, capsys):
    answers = [Response(502, b"<html>Bad Gateway</html>"), Response(503, b"")]

    def flaky(handler) -> Response:
        return answers.pop(0) if answers else monitor.site.serve_file(HKMA_FEED)

    monitor.site.routes["/faulty"] = flaky
    write_config(monitor, FEED, settings=FAULT_SETTINGS.replace("retries = 1\n", "retries = 2\n"))
    code, out, err = monitor.round(capsys)
    assert (code, out) == (0, "") and "source faulty failed" not in err
    assert rows(monitor.db, "SELECT status FROM fetches") == [("baseline",)]


def test_a_long_retry_after_is_not_waited_for_and_not_hammered(monitor, capsys):
    calls = []
    monitor.site.routes["/faulty"] = lambda h: calls.append(1) or Response(429, b"", {"Retry-After": "3600"})
    write_config(monitor, FEED)
    started = time.monotonic()
    code, _, err = monitor.round(capsys)
    assert code == 1 and "HTTP 429 Too Many Requests (Retry-After 3600s" in err
    assert len(calls) == 1 and time.monotonic() - started < 2


def _charset_variants(site: LocalSite) -> dict[str, Response]:
    text = utf8_listing(site)
    as_utf8 = text.replace("charset=big5", "charset=utf-8").encode("utf-8")
    big5 = site.serve_file(FSTB_PAGE).body
    broken = (
        as_utf8.replace(b"</td>", b"")
        .replace(b"</tr>", b"</div></span>")
        .replace(b"<body>", b"<body><b><i>unclosed & < stray")
        .replace(b"</html>", b"")
    )
    reworded = re.sub(  # the template now writes "Date: 30 Jul 2026" for 2026年7月30日
        r'<td class="date">(\d{4})年(\d{1,2})月(\d{1,2})日',
        lambda m: f'<td class="date">Date: {m[3]} {calendar.month_abbr[int(m[2])]} {m[1]}',
        text.replace("charset=big5", "charset=utf-8"),
    )
    return {
        "utf8-correctly-labelled": Response(200, as_utf8, {"Content-Type": "text/html; charset=utf-8"}),
        "dates-reworded": Response(200, reworded.encode(), {"Content-Type": "text/html; charset=utf-8"}),
        "big5-labelled-utf8": Response(200, big5, {"Content-Type": "text/html; charset=utf-8"}),
        "utf8-labelled-big5": Response(
            200,
            as_utf8.replace(b"charset=utf-8", b"charset=big5"),
            {"Content-Type": "text/html; charset=big5"},
        ),
        "big5-correctly-labelled": Response(200, big5, {"Content-Type": "text/html; charset=big5"}),
        # one pair no Big5 table maps, in a comment: the page is still Big5, not Windows-1252
        "big5-with-a-stray-byte": Response(
            200,
            big5.replace(b"</body>", b"<!-- \xa3\xe1 --></body>"),
            {"Content-Type": "text/html; charset=big5"},
        ),
        "broken-html": Response(200, broken, {"Content-Type": "text/html; charset=utf-8"}),
    }


@pytest.mark.parametrize(
    "variant",
    ["big5-labelled-utf8", "utf8-labelled-big5", "broken-html", "big5-with-a-stray-byte", "dates-reworded"],
)
def test_a_readable_fault_is_read_correctly_and_changes_nothing(monitor, capsys, variant):
    variants = _charset_variants(monitor.site)
    baseline = (
        "utf8-correctly-labelled"
        if variant in ("big5-labelled-utf8", "broken-html")
        else "big5-correctly-labelled"
    )
    monitor.site.routes["/faulty"] = fixed(variants[baseline])
    write_config(monitor, LISTING)
    assert monitor.round(capsys)[:2] == (0, "")
    titles = rows(monitor.db, "SELECT key, title, link, date FROM items ORDER BY key")
    assert ("《2026年保險業（修訂）條例草案》刊憲",) in [(t,) for _, t, _, _ in titles]

    monitor.site.routes["/faulty"] = fixed(variants[variant])
    code, out, err = monitor.round(capsys)
    assert (code, out) == (0, ""), err
    assert rows(monitor.db, "SELECT status FROM fetches ORDER BY id") == [("baseline",), ("unchanged",)]
    assert rows(monitor.db, "SELECT key, title, link, date FROM items ORDER BY key") == titles
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


def test_a_partial_answer_right_after_an_outage_is_still_held_back(monitor, capsys):
    """Three rounds of 503 are not three rounds of the partial answer: the guard counts its own."""
    answers = {"now": rss(feed_of(50))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")

    answers["now"] = Response(503, b"<html>busy</html>")
    for _ in range(3):
        assert monitor.round(capsys)[0] == 1
    answers["now"] = rss(feed_of(2))  # the site is back, serving the two oldest notices only
    for _ in range(3):
        code, _, err = monitor.round(capsys)
        assert code == 1 and "suspicious: the listing holds 2 of the 50 items it held before" in err
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]

    answers["now"] = rss(feed_of(50))  # the whole feed again: nothing happened, nothing to say
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "NEW:" not in out and "REMOVED:" not in out
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


REGISTER_PAGE = """[[sources]]
id = "faulty"
regulator = "HKMA"
kind = "page"
url = "{base}/faulty"
select = "main#content"
exclude = [".share-tools"]
ignore = ['^Last revision date']
"""


def test_a_maintenance_notice_in_the_registers_own_template_is_not_a_change(monitor, capsys):
    register = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    notice = register.body.replace(b"<main", b"<main hidden").split(b"<main hidden")[0] + (
        b'<main id="content"><h1>Register of Licensed Stablecoin Issuers</h1>'
        b"<p>This service is unavailable during system maintenance. Please visit again later.</p></main>"
        b"</body></html>"
    )
    answers = {"now": register}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")

    answers["now"] = Response(200, notice, register.headers)
    outs = []
    for _ in range(5):  # retried every few minutes: more than three refusals within the hold
        code, out, err = monitor.round(capsys)
        assert code == 1
        assert (
            "suspicious: the page keeps 1 of its " in err and "(a maintenance, login or partial page?)" in err
        )
        outs.append(out)
    assert outs[2].startswith(f"== Source health {'=' * 48}\nSource faulty has failed 3 times in a row")
    assert "PAGE CHANGED" not in "".join(outs)
    answers["now"] = register
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (
        0,
        f"== Source health {'=' * 48}\nSource faulty has recovered after 5 failed attempts.\n\n",
    )
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


def test_a_stale_copy_of_a_register_alerts_no_licensee_struck_off_and_back(monitor, capsys):
    """A CDN edge serving the register from before SC0003 was added now and then: SC0003 was
    "removed", then "added" again. A licensee really struck off is alerted one poll later."""
    before = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    after = Response(200, (ROUND2 / "hkma/eng/stablecoin-register.html").read_bytes(), before.headers)
    answers = {"now": before}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")
    outs = []
    for answer in (after, before, after, before, after):
        answers["now"] = answer
        code, out, err = monitor.round(capsys)
        assert code == 0, err
        outs.append(out)
    assert "PAGE CHANGED" in outs[0] and "SC0003" in outs[0]
    assert "".join(outs[1:]) == ""  # never "struck off", never "added" again
    answers["now"] = before  # now it is gone for good
    assert monitor.round(capsys)[:2] == (0, "")
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "PAGE CHANGED" in out and "- " in out and "SC0003" in out
    answers["now"] = after  # a stale copy from before it was struck off: not "licensed" again
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = before
    assert monitor.round(capsys)[:2] == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(2,)]


def test_a_feed_that_shrank_and_changed_its_links_at_once_is_taken_after_the_hold(
    monitor, capsys, monkeypatch
):
    """Refused by one guard, then the other: their refusals add up, or the source fails forever."""
    answers = {"now": rss(feed_of(50))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    relinked = feed_of(5).replace(b"/notice/", b"/notices/").replace(b"<guid>26N", b"<guid>HKMA-26N")
    answers["now"] = rss(relinked)  # 5 of the 50, every one under a new id and link
    for _ in range(3):
        code, _, err = monitor.round(capsys)
        assert code == 1 and "suspicious: the listing holds 5 of the 50 items it held before" in err
    monkeypatch.setattr(guards, "SHRINK_HOLD", timedelta(0))  # as if the shrink had lasted 12 hours
    code, out, err = monitor.round(capsys)
    assert code == 0, err
    assert "NEW:" not in out and "REMOVED:" not in out  # the 5 are found again by title
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert monitor.round(capsys)[0] == 0


SFC_TC_FEED = "/sfc/tc/rss/press-releases.xml"
HKSCS = "𨋢"  # lift, in Cantonese: in Big5-HKSCS, not in plain Big5


def _big5_feed(site: LocalSite, declared: str) -> bytes:
    text = site.serve_file(SFC_TC_FEED).body.decode("utf-8").replace("</title>", f"{HKSCS}</title>", 1)
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return (head + text.split("?>", 1)[1]).encode("big5hkscs")


@pytest.mark.parametrize(
    ("declared", "header"),
    [("", "application/rss+xml; charset=utf-8"), ("", "application/rss+xml"), ("big5", "text/xml")],
    ids=["big5-labelled-utf8", "big5-unlabelled", "hkscs-declared-big5"],
)
def test_a_big5_feed_reads_as_its_utf8_copy(monitor, capsys, declared, header):
    utf8 = (
        monitor.site.serve_file(SFC_TC_FEED).body.decode("utf-8").replace("</title>", f"{HKSCS}</title>", 1)
    )
    answers = {"now": rss(utf8.encode("utf-8"))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    titles = rows(monitor.db, "SELECT key, title FROM items ORDER BY key")
    assert any("證監會" in title for _, title in titles)

    answers["now"] = Response(200, _big5_feed(monitor.site, declared), {"Content-Type": header})
    code, out, err = monitor.round(capsys)
    assert (code, out) == (0, ""), err
    assert rows(monitor.db, "SELECT key, title FROM items ORDER BY key") == titles
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


def stablecoin_feed(numbers: list[int]) -> bytes:
    items = "".join(
        f"<item><title>Circular {n} on stablecoin issuers</title><guid>26EC{n:03d}</guid>"
        f"<link>https://www.hkma.gov.hk/circular/{n}</link></item>"
        for n in numbers
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title>{items}</channel></rss>'.encode()


def test_a_stale_copy_served_now_and_then_alerts_nothing_more(monitor, capsys):
    """A CDN edge still serving the listing from before circular 12: it was 'removed', then back."""
    fresh, stale = rss(stablecoin_feed(list(range(12, 0, -1)))), rss(stablecoin_feed(list(range(11, 0, -1))))
    answers = {"now": stale}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    outs = []
    for answer in (fresh, stale, fresh, stale, fresh, stale, fresh):
        answers["now"] = answer
        code, out, err = monitor.round(capsys)
        assert code == 0, err
        outs.append(out)
    assert outs[0].count("NEW: Circular 12 on stablecoin issuers") == 1
    assert "".join(outs[1:]) == ""  # never "removed", never "new" again
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("new", "Circular 12 on stablecoin issuers")
    ]


def test_a_stale_copy_with_a_title_from_before_its_correction_alerts_nothing(monitor, capsys):
    listed = list(range(12, 0, -1))
    corrected = stablecoin_feed(listed).replace(b"Circular 9 on", b"Corrected circular 9 on")
    answers = {"now": rss(stablecoin_feed(listed))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    outs = []
    for feed in (corrected, corrected, stablecoin_feed(listed), corrected, corrected):
        answers["now"] = rss(feed)
        code, out, err = monitor.round(capsys)
        assert code == 0, err
        outs.append(out)
    assert outs[0] == "" and outs[1].count("CHANGED: Corrected circular 9 on stablecoin issuers") == 1
    assert "".join(outs[2:]) == ""  # the stale copy's old title, once: neither back nor forth
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("changed", "Corrected circular 9 on stablecoin issuers")
    ]


def test_a_withdrawn_circular_is_alerted_when_it_is_missing_two_rounds_running(monitor, capsys):
    listed = list(range(12, 0, -1))
    answers = {"now": rss(stablecoin_feed(listed))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = rss(stablecoin_feed([n for n in listed if n != 6]))  # withdrawn from the middle
    assert monitor.round(capsys)[:2] == (0, "")  # missing once: maybe a stale copy
    code, out, _ = monitor.round(capsys)  # the very same bytes again: it is gone
    assert code == 0 and out.count("REMOVED: Circular 6 on stablecoin issuers") == 1
    assert "no longer listed by the source" in out
    assert monitor.round(capsys)[:2] == (0, "")  # and said once
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("removed", "Circular 6 on stablecoin issuers")
    ]
    # The evidence: "before" is the feed that still listed it, not the one that first left it out.
    code, before, _ = monitor("show", "1", "--before", capsys=capsys)
    assert code == 0 and "Circular 6 on stablecoin issuers" in before
    code, after, _ = monitor("show", "1", "--raw", capsys=capsys)
    assert code == 0 and "Circular 6 on" not in after
    # A stale copy still listing it, once: nothing. Listed again two rounds running (restored after
    # a withdrawal in error): the REMOVED must not be left standing.
    answers["now"] = rss(stablecoin_feed(listed))
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = rss(stablecoin_feed([n for n in listed if n != 6]))
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = rss(stablecoin_feed(listed))
    assert monitor.round(capsys)[:2] == (0, "")
    code, out, _ = monitor.round(capsys)
    assert code == 0 and out.count("CHANGED: Circular 6 on stablecoin issuers") == 1
    assert "listed again" in out
    assert monitor.round(capsys)[:2] == (0, "")  # said once
    assert rows(monitor.db, "SELECT kind FROM changes ORDER BY id") == [("removed",), ("changed",)]


def test_a_shrink_taken_after_its_hold_is_diffed_at_once_and_not_held_again(monitor, capsys, monkeypatch):
    answers = {"now": rss(feed_of(50))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = rss(feed_of(2))  # only the two oldest notices from now on
    for _ in range(3):
        assert monitor.round(capsys)[0] == 1
    monkeypatch.setattr(guards, "SHRINK_HOLD", timedelta(0))  # as if 12 hours had passed
    assert monitor.round(capsys)[0] == 0
    removed = rows(monitor.db, "SELECT count(*) FROM changes WHERE kind = 'removed'")
    assert removed == [(48,)]  # confirmed by the hold: not kept back for another round
    for _ in range(2):
        assert monitor.round(capsys)[0] == 0  # the new normal: no second hold
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(48,)]


def test_a_removal_is_still_confirmed_after_a_failed_round_between(monitor, capsys):
    listed = list(range(12, 0, -1))
    answers = {"now": rss(stablecoin_feed(listed))}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, FEED)
    monitor.round(capsys)
    withdrawn = rss(stablecoin_feed([n for n in listed if n != 6]))
    answers["now"] = withdrawn
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = Response(503, b"<html>busy</html>")
    assert monitor.round(capsys)[0] == 1
    answers["now"] = withdrawn
    code, out, _ = monitor.round(capsys)
    assert code == 0 and out.count("REMOVED: Circular 6 on stablecoin issuers") == 1


def dated_feed(items: list[tuple[int, str]]) -> Response:
    """An HKMA-like feed of (day of July 2026, title) items, newest first."""
    entries = "".join(
        f"<item><title>{title}</title><link>https://www.hkma.gov.hk/n/{title.replace(' ', '-')}</link>"
        f"<pubDate>{calendar.day_abbr[calendar.weekday(2026, 7, day)]}, {day:02d} Jul 2026 10:00:00 +0800</pubDate></item>"
        for day, title in items
    )
    return rss(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title>{entries}</channel></rss>'.encode()
    )


def test_a_listing_that_grows_its_page_alerts_the_new_release_not_its_history(monitor, capsys):
    """The feed carried 10 items (20-30 July); now it carries 40: one release of 31 July, and 29
    of 1-19 July that it had not shown (its page grew). Only the release of 31 July is news."""
    listed = [(day, f"Stablecoin issuers: notice of {day} July") for day in range(30, 20, -1)]
    history = [(1 + n % 19, f"Stablecoin reserve notice {n}") for n in range(29)]
    monitor.site.routes["/faulty"] = lambda h: dated_feed(listed)
    write_config(monitor, FEED)
    monitor.round(capsys)
    monitor.site.routes["/faulty"] = lambda h: dated_feed(
        [(31, "Stablecoin issuers: new licence"), *listed, *history]
    )
    code, out, err = monitor.round(capsys)
    assert code == 0 and out.count("NEW: ") == 1 and "NEW: Stablecoin issuers: new licence" in out
    assert "faulty: 29 items dated before anything listed before came into view (the listing grew" in err
    assert rows(monitor.db, "SELECT title FROM changes") == [("Stablecoin issuers: new licence",)]
    assert monitor.round(capsys)[:2] == (0, "")  # the history is known now: never alerted later


def test_a_backdated_release_among_a_few_new_ones_is_alerted(monitor, capsys):
    """Only a listing that grew holds its history back: a release dated before the others is news."""
    listed = [(day, f"Stablecoin issuers: notice of {day} July") for day in range(30, 20, -1)]
    monitor.site.routes["/faulty"] = lambda h: dated_feed(listed)
    write_config(monitor, FEED)
    monitor.round(capsys)
    backdated = [
        (31, "Stablecoin issuers: new licence"),
        *listed[:-1],
        (2, "Stablecoin circular dated 2 July"),
    ]
    monitor.site.routes["/faulty"] = lambda h: dated_feed(backdated)
    _, out, _ = monitor.round(capsys)
    assert "NEW: Stablecoin issuers: new licence" in out and "NEW: Stablecoin circular dated 2 July" in out


def test_a_made_up_content_encoding_is_ignored_as_httpx_ignores_it(monitor, capsys):
    """Some servers label a plain body "Content-Encoding: none" or "UTF-8": it is read as it is."""
    monitor.site.routes["/faulty"] = lambda h: Response(
        200, feed_of(5), {"Content-Type": "application/rss+xml", "Content-Encoding": "UTF-8"}
    )
    write_config(monitor, FEED)
    code, _, err = monitor.round(capsys)
    assert code == 0 and "faulty: baseline, 5 items/lines" in err


@pytest.mark.parametrize(
    ("source", "path", "cut_before"),
    [
        # the FSTB listing cut in the middle of its first title
        pytest.param(LISTING, FSTB_PAGE, "修訂）條例草案》刊憲".encode("big5"), id="listing-mid-title"),
        # the register cut after a whole row: the next licensee's row and the rest are missing
        pytest.param(
            REGISTER_PAGE,
            "/hkma/eng/stablecoin-register.html",
            b"<tr>\n                <td>Lion",
            id="page-at-a-row",
        ),
    ],
)
def test_a_page_cut_short_with_an_honest_length_is_not_a_change(monitor, capsys, source, path, cut_before):
    """A server that failed while writing the page and sent the length of what it wrote: the title
    cut in two is not "changed", nor the rows after the cut "removed"."""
    whole = monitor.site.serve_file(path)
    answers = {"now": whole}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, source)
    assert monitor.round(capsys)[:2] == (0, "")
    cut = whole.body[: whole.body.index(cut_before)]
    answers["now"] = Response(200, cut, whole.headers)  # LocalSite sends its Content-Length
    code, out, err = monitor.round(capsys)
    assert (code, out) == (1, "")
    assert "source faulty failed: cut short? the page stops" in err and "the old snapshot is kept" in err
    answers["now"] = whole
    assert monitor.round(capsys)[:2] == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]


def test_a_site_that_stops_writing_the_end_of_its_pages_is_read_again_after_the_hold(
    monitor, capsys, monkeypatch
):
    whole = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    answers = {"now": whole}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")
    new_template = (  # no end written from now on, and a new licensee
        whole.body.replace(b"</html>", b"").replace(b"</body>", b"").replace(b"SC0002", b"SC0003")
    )
    answers["now"] = Response(200, new_template, whole.headers)
    for _ in range(3):
        assert monitor.round(capsys)[0] == 1
    monkeypatch.setattr(guards, "SHRINK_HOLD", timedelta(0))  # as if 12 hours had passed
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "PAGE CHANGED" in out and "SC0003" in out
    for _ in range(2):
        assert monitor.round(capsys)[:2] == (0, "")  # the new normal: not held again


def test_a_generated_at_stamp_inside_the_region_read_is_not_a_change(monitor, capsys):
    """The stamp changes every request; a banner outside the region makes the page be read again."""
    whole = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    served = {"round": 0}

    def register(handler):
        served["round"] += 1
        stamp = f"<p>Page generated at 2026-07-30 10:{served['round']:02d}:03 HKT</p></main>".encode()
        banner = f'<div class="banner">Notice {served["round"]}</div><main'.encode()
        body = whole.body.replace(b"</main>", stamp).replace(b"<main", banner, 1)
        return Response(200, body, whole.headers)

    monitor.site.routes["/faulty"] = register
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")
    for _ in range(2):
        assert monitor.round(capsys)[:2] == (0, "")
    assert rows(monitor.db, "SELECT count(*) FROM changes") == [(0,)]
    assert rows(monitor.db, "SELECT status FROM fetches ORDER BY id") == [
        ("baseline",),
        ("updated",),
        ("updated",),
    ]


def test_an_older_item_sliding_into_a_fixed_size_listing_is_not_news(monitor, capsys):
    """A listing of the 10 latest: one withdrawn from the middle, and the 11th latest (20 July)
    comes into view at its bottom. The withdrawal is news; the older notice is not."""
    notices = [(day, f"Stablecoin issuers: notice of {day} July") for day in range(30, 19, -1)]
    shown = {"now": notices[:10]}
    monitor.site.routes["/faulty"] = lambda h: dated_feed(shown["now"])
    write_config(monitor, FEED)
    monitor.round(capsys)
    shown["now"] = [notice for notice in notices if notice[0] != 25][:10]
    outs = [monitor.round(capsys)[1] for _ in range(2)]
    assert "NEW" not in "".join(outs)
    assert outs[1].count("REMOVED: Stablecoin issuers: notice of 25 July") == 1
    assert rows(monitor.db, "SELECT kind, title FROM changes") == [
        ("removed", "Stablecoin issuers: notice of 25 July")
    ]


def test_a_page_with_a_long_script_after_its_end_is_not_cut_short(monitor, capsys):
    """A proxy or CMS that appends 5 KB of script after </html>: the page is complete."""
    whole = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    answers = {"now": whole}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")
    trailing = whole.body.replace(b"SC0002", b"SC0003") + b"<script>" + b"var a = 1;\n" * 500 + b"</script>"
    answers["now"] = Response(200, trailing, whole.headers)
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "PAGE CHANGED" in out and "SC0003" in out


def test_a_session_id_in_every_link_is_named_and_then_left_out_of_the_items_identity(monitor, capsys):
    """A site that puts a new `sid` in every link on every visit: the error names the parameter, and
    with ignore_params the source reads as usual, the next release alerting at once."""
    listed = [f"Circular {n} on stablecoin issuers" for n in range(5, 0, -1)]

    def feed(handler):
        sid = os.urandom(8).hex()
        items = "".join(
            f"<item><title>{title}</title>"
            f"<link>https://www.hkma.gov.hk/circular?ref={title.split()[1]}&amp;sid={sid}</link></item>"
            for title in listed
        )
        return rss(
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title>{items}</channel></rss>'.encode()
        )

    monitor.site.routes["/faulty"] = feed
    write_config(monitor, FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    code, _, err = monitor.round(capsys)
    assert code == 1 and 'the links differ only in their "sid" parameter' in err
    assert 'add ignore_params = ["sid"] to the source' in err
    write_config(monitor, FEED + 'ignore_params = ["sid"]\n')
    assert monitor.round(capsys)[:2] == (0, "")  # the items stored with their old sids are the same items
    listed.insert(0, "Circular 6 on stablecoin issuers")
    code, out, _ = monitor.round(capsys)
    assert code == 0 and out.count("NEW: ") == 1 and "NEW: Circular 6 on stablecoin issuers" in out
    assert monitor.round(capsys)[:2] == (0, "")


def test_more_releases_at_once_than_a_listing_shows_are_all_alerted(monitor, capsys):
    """A listing of the 10 latest, and 11 releases in one day (or over a weekend the monitor was
    down): nothing listed before is listed now, yet this is news, not a new link format."""
    listed = [(day, f"Stablecoin issuers: notice of {day} July") for day in range(20, 10, -1)]
    monitor.site.routes["/faulty"] = lambda h: dated_feed(listed)
    write_config(monitor, FEED)
    monitor.round(capsys)
    burst = [(30 - n // 3, f"Stablecoin circular {n}") for n in range(10)]
    monitor.site.routes["/faulty"] = lambda h: dated_feed(burst)
    code, out, err = monitor.round(capsys)
    assert code == 0 and out.count("NEW: Stablecoin circular") == 10 and "REMOVED" not in out
    assert "more releases than the listing shows may have come out since the last poll" in err


def test_a_cut_short_page_is_refused_though_a_script_writes_an_end_of_page_in_its_head(monitor, capsys):
    """A "printable version" helper: document.write("<html><body>" + ... + "</body></html>")."""
    whole = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    helper = b'<script>function print(w){w.document.write("<html><body>"+x+"</body></html>")}</script></head>'
    page = whole.body.replace(b"</head>", helper)
    answers = {"now": Response(200, page, whole.headers)}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE)
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = Response(200, page[: page.index(b"<tr>\n                <td>Lion")], whole.headers)
    code, out, err = monitor.round(capsys)
    assert (code, out) == (1, "") and "cut short? the page stops before the </body>" in err


def test_a_page_that_never_writes_its_end_and_ends_in_text_is_read_as_it_is(monitor, capsys):
    whole = monitor.site.serve_file("/hkma/eng/stablecoin-register.html")
    endless = whole.body[: whole.body.index(b"</p>", whole.body.index(b"Last revision date"))]
    answers = {"now": Response(200, endless, whole.headers)}
    monitor.site.routes["/faulty"] = lambda handler: answers["now"]
    write_config(monitor, REGISTER_PAGE.replace("ignore = ['^Last revision date']\n", ""))
    assert monitor.round(capsys)[:2] == (0, "")
    answers["now"] = Response(200, endless.replace(b"SC0002", b"SC0003"), whole.headers)
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "PAGE CHANGED" in out and "SC0003" in out
