"""JSON API sources in the real shapes of the SFC e-Distribution API and the HKMA Open API."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from datetime import datetime

from monitor.config import load_config
from monitor.localsite import Response
from monitor.models import Change
from monitor.store import Store
from tests.conftest import ROOT

SFC_TC = json.loads((ROOT / "tests/fixtures/real/sfc_tc_news.json").read_text(encoding="utf-8"))["items"]

SFC_NEWS_TC = """[[sources]]
id = "sfc-news-api-tc"
regulator = "SFC"
kind = "json"
method = "POST"
url = "{base}/edistributionWeb/api/news/search"
body = { lang = "TC", category = "all", year = "all", pageNo = 0, pageSize = 20, sort = { field = "issueDate", order = "desc" } }
items_path = "items"
item_id = "newsRefNo"
title = "title"
date = "issueDate"
link = "https://apps.sfc.hk/edistributionWeb/gateway/TC/news-and-announcements/news/doc?refNo={newsRefNo}"
"""
HKMA_API = """[[sources]]
id = "hkma-press-api-en"
regulator = "HKMA"
kind = "json"
url = "{base}/public/press-releases"
params = { lang = "en", offset = "0", pagesize = "100" }
items_path = "result.records"
success_path = "header.success"
title = "title"
date = "date"
link = "link"
"""


def sfc_answer(count: int) -> bytes:
    """The SFC search answer: the newest `count` of the real 2026 Chinese titles (26PR126 first)."""
    records = [
        {
            "newsRefNo": item["refNo"],
            "title": item["title"],
            "issueDate": f"{item['date']}T18:00:00.000+08:00",
        }
        for item in SFC_TC[-count:]
    ]
    return json.dumps({"items": records, "total": len(SFC_TC)}, ensure_ascii=False).encode()


def test_sfc_search_is_posted_and_its_items_alert(monitor, capsys):
    seen = []
    answer = {"count": 20}

    def search(handler):
        seen.append(json.loads(handler.body))
        return Response(200, sfc_answer(answer["count"]), {"Content-Type": "application/json;charset=UTF-8"})

    monitor.site.routes["/edistributionWeb/api/news/search"] = search
    monitor.write(SFC_NEWS_TC)
    assert monitor.round(capsys)[:2] == (0, "")
    assert seen[0] == {"lang": "TC", "category": "all", "year": "all", "pageNo": 0, "pageSize": 20,
                       "sort": {"field": "issueDate", "order": "desc"}}  # fmt: skip
    SFC_TC.append(
        {"refNo": "26PR127", "title": "證監會與金管局就穩定幣發出聯合通函\r\n", "date": "2026-08-17"}
    )
    try:
        answer["count"] = 21
        code, out, _ = monitor.round(capsys)
    finally:
        SFC_TC.pop()
    assert code == 0
    assert "NEW: 證監會與金管局就穩定幣發出聯合通函\n" in out
    assert (
        "Link:    https://apps.sfc.hk/edistributionWeb/gateway/TC/news-and-announcements/news/doc?refNo=26PR127"
        in out
    )
    assert "Date:    2026-08-17 18:00 HKT" in out
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT item_key FROM changes").fetchall() == [("id:26PR127",)]


def test_hkma_open_api_and_its_failure_flag(monitor, capsys):
    records = [
        {"title": "Granting of stablecoin issuer licences", "link": "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/04/20260410-3/", "date": "2026-04-10"},
        {"title": "Exchange Fund Abridged Balance Sheet", "link": "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/04/20260409-4/", "date": "2026-04-09"},
    ]  # fmt: skip
    state = {"success": True, "records": records[1:]}

    def api(handler):
        assert handler.path.endswith("?lang=en&offset=0&pagesize=100")
        answer = {
            "header": {"success": state["success"], "err_code": "0000"},
            "result": {"datasize": 2, "records": state["records"]},
        }
        return Response(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    monitor.site.routes["/public/press-releases"] = api
    monitor.write(HKMA_API)
    monitor.round(capsys)
    state["success"] = False
    code, _, err = monitor.round(capsys)
    assert code == 1 and "the API reported failure (header.success is not true)" in err
    state.update(success=True, records=records)
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "NEW: Granting of stablecoin issuer licences" in out and "Date:    2026-04-10" in out


def test_shipped_api_sources_are_declared():
    config = load_config(ROOT / "sources.toml")
    sfc = config.source("sfc-news-api-en")
    assert sfc and sfc.method == "POST" and json.loads(sfc.body)["lang"] == "EN"
    assert config.source("sfc-news-api-tc") and config.source("hkma-press-api-en")


def test_one_release_through_the_feed_and_the_api_alerts_once(monitor, capsys):
    """The SFC's RSS feed and its e-Distribution API share the reference number (26PR127)."""
    from tests.conftest import ROUND2

    _feed_and_english_api(monitor)
    monitor.round(capsys)
    code, out, _ = monitor.round(capsys, ROUND2)
    assert code == 0
    assert out.count(JOINT_CIRCULAR) == 1
    with sqlite3.connect(monitor.db) as conn:
        logged = conn.execute("SELECT id, source_id, duplicate_of FROM changes ORDER BY id").fetchall()
    assert (
        len(logged) == 2 and [d for _, _, d in logged].count(None) == 1
    )  # both logged, one marked duplicate


def test_a_reviewer_sees_which_copy_of_a_release_alerted(monitor, capsys, tmp_path):
    """Both copies are in the change log; the one that sent no alert says so, everywhere."""
    from tests.conftest import ROUND2

    _feed_and_english_api(monitor)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    with sqlite3.connect(monitor.db) as conn:
        ((first, repeat),) = conn.execute(
            "SELECT duplicate_of, id FROM changes WHERE duplicate_of IS NOT NULL"
        )
        (other,) = conn.execute("SELECT source_id FROM changes WHERE id = ?", [repeat]).fetchone()
    _, out, _ = monitor("show", str(repeat), capsys=capsys)
    assert f"Repeat:    of change #{first}, which alerted for this release; this copy sent no alert" in out
    _, out, _ = monitor("show", str(first), capsys=capsys)
    assert f"Also in:   {other}" in out
    _, out, _ = monitor("log", capsys=capsys)
    assert f"[repeat of #{first}] {JOINT_CIRCULAR}" in out
    _, out, _ = monitor("export", capsys=capsys)
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out))}
    assert rows[str(repeat)]["duplicate_of"] == str(first) and rows[str(first)]["duplicate_of"] == ""
    monitor("report", "--out", str(tmp_path / "site"), capsys=capsys)
    page = (tmp_path / "site" / "changes" / f"{repeat}.html").read_text(encoding="utf-8")
    assert f'of <a href="{first}.html">change #{first}</a>, which alerted for this release' in page
    monitor("report", "--source", other, "--out", str(tmp_path / "one"), capsys=capsys)
    page = (tmp_path / "one" / "changes" / f"{repeat}.html").read_text(encoding="utf-8")
    assert f"of change #{first}, which alerted" in page  # its page is not in this report: no link
    store = Store.open(monitor.db)
    try:  # what /recent lists: the release once
        assert [logged.id for logged in store.recent(None, 5)] == [first]
    finally:
        store.close()
    # Reviewing the alert reviews the release: its repeat leaves the inbox of new changes with it.
    assert monitor("review", str(first), "--state", "reviewed", "--by", "amy", capsys=capsys)[0] == 0
    _, out, _ = monitor("log", "--state", "new", capsys=capsys)
    assert JOINT_CIRCULAR not in out
    _, out, _ = monitor("show", str(repeat), capsys=capsys)
    assert f"reviewed by amy: with #{first}, which alerted for this release" in out


def _feed_and_english_api(monitor, lagging: dict | None = None) -> None:
    """The SFC's RSS feed and an English e-Distribution API answering with the feed's items (or
    with `lagging["feed"]`, a feed it has not caught up with yet)."""

    def english_api(handler):
        feed = (lagging or {}).get("feed") or (monitor.site.root / "sfc/en/rss/press-releases.xml").read_text(
            encoding="utf-8"
        )
        pairs = re.findall(r"<title>([^<]+)</title>\s*<link>[^<]*refNo=(\w+)", feed)
        records = [
            {"newsRefNo": ref, "title": title, "issueDate": "2026-08-03T17:05:00+08:00"}
            for title, ref in pairs
        ]
        return Response(
            200,
            json.dumps({"items": records, "total": len(records)}).encode(),
            {"Content-Type": "application/json"},
        )

    from tests.conftest import SFC_PRESS

    monitor.site.routes["/edistributionWeb/api/news/search"] = english_api
    api = SFC_NEWS_TC.replace("sfc-news-api-tc", "sfc-news-api-en").replace('lang = "TC"', 'lang = "EN"')
    monitor.write(SFC_PRESS, api)


JOINT_CIRCULAR = "SFC and HKMA issue joint circular on distribution of licensed stablecoins"


def test_a_dry_run_shows_a_release_seen_through_the_feed_and_the_api_once(monitor, capsys):
    from tests.conftest import ROUND2

    _feed_and_english_api(monitor)
    monitor.round(capsys)
    monitor.site.root = ROUND2
    code, out, err = monitor("run", "--once", "--dry-run", "--all", capsys=capsys)
    assert code == 0
    assert out.count(JOINT_CIRCULAR) == 1
    (also,) = [line for line in out.splitlines() if line.startswith("Also:")]  # the other copy, as alerted
    (alerted,) = [line for line in out.splitlines() if line.startswith("Source:")]
    assert ("sfc-news-api-en" in also) != ("sfc-news-api-en" in alerted)
    assert "dry run (nothing stored or sent): 2 of 2 sources polled, 0 failed, 2 changes, 1 alerts" in err
    per_source = [line for line in err.splitlines() if line.startswith(("sfc-press-en:", "sfc-news-api-en:"))]
    assert sorted(line.split(", ")[-1].split(" (")[0] for line in per_source) == ["0 alerts", "1 alerts"]


def test_a_dry_run_leaves_out_a_release_already_alerted_through_another_source(monitor, capsys):
    from tests.conftest import ROUND2

    lagging: dict = {}
    _feed_and_english_api(monitor, lagging)
    monitor.round(capsys)
    lagging["feed"] = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_text(encoding="utf-8")
    code, out, _ = monitor.round(capsys, ROUND2)  # the feed has it; the API not yet
    assert out.count(JOINT_CIRCULAR) == 1
    lagging.clear()  # the API catches up
    code, out, err = monitor("run", "--once", "--dry-run", "--all", capsys=capsys)
    assert code == 0 and JOINT_CIRCULAR not in out
    assert "1 changes, 0 alerts" in err
    code, out, err = monitor("run", "--once", "--all", capsys=capsys)  # and the round agrees
    assert JOINT_CIRCULAR not in out and "1 changes, 0 alerts" in err


def test_a_lone_surrogate_in_an_api_record_costs_that_character_not_the_source(monitor, capsys):
    records = {"header": {"success": True}, "result": {"records": [
        {"title": f"HKMA notice {n} on stablecoin issuers", "date": "2026-08-0{n}", "link": f"https://www.hkma.gov.hk/{n}"}
        for n in range(1, 4)
    ]}}  # fmt: skip
    answer = {"body": json.dumps(records).encode()}
    monitor.site.routes["/public/press-releases"] = lambda handler: Response(
        200, answer["body"], {"Content-Type": "application/json"}
    )
    monitor.write(HKMA_API)
    assert monitor.round(capsys)[:2] == (0, "")
    records["result"]["records"].insert(
        0,
        {
            "title": "HKMA \\ud800 notice 4 on stablecoin issuers",
            "date": "2026-08-04",
            "link": "https://www.hkma.gov.hk/4",
        },
    )
    answer["body"] = json.dumps(records).encode().replace(b"\\\\ud800", b"\\ud800")  # JSON's escape, unpaired
    code, out, err = monitor.round(capsys)
    assert code == 0, err
    assert "NEW: HKMA notice 4 on stablecoin issuers" in out


def test_a_renamed_date_field_is_a_warning_not_an_edit_of_every_release(monitor, capsys):
    answer = {"body": sfc_answer(20)}
    monitor.site.routes["/edistributionWeb/api/news/search"] = lambda h: Response(
        200, answer["body"], {"Content-Type": "application/json"}
    )
    monitor.write(SFC_NEWS_TC)
    assert monitor.round(capsys)[:2] == (0, "")
    answer["body"] = answer["body"].replace(b'"issueDate"', b'"issueDateTime"')
    code, out, err = monitor.round(capsys)
    assert (code, out) == (0, "") and "no record has a 'issueDate' (API changed?): items without dates" in err
    epoch = json.loads(sfc_answer(20))
    for record in epoch["items"]:  # the same dates as Unix milliseconds: not the year 1786
        moment = datetime.fromisoformat(record["issueDate"])
        record["issueDate"] = int(moment.timestamp() * 1000)
    answer["body"] = json.dumps(epoch).encode()
    assert monitor.round(capsys)[:2] == (0, "")
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM changes").fetchone() == (0,)
        assert conn.execute("SELECT min(date) FROM items").fetchone()[0].startswith("2026-")


def test_two_releases_that_share_a_title_are_two_releases(tmp_path):
    """The SFC's 26PR129 and 26PR131 both "SFC warns public of suspicious stablecoin investment
    schemes": the second is not a repeat of the first, though the RSS copy of 26PR131 has its title."""
    store = Store.open(tmp_path / "monitor.db")
    title = "SFC warns public of suspicious stablecoin investment schemes"
    with store.db.conn:
        for change_id, source, ref in (
            (74, "sfc-news-api-en", "26PR129"),
            (80, "sfc-news-api-en", "26PR131"),
        ):
            store.db.execute(
                """INSERT INTO changes (id, source_id, regulator, kind, item_key, title, topics, fetch_id,
                     fetched_at, detected_at, title_key)
                   VALUES (?, ?, 'SFC', 'new', ?, ?, '["stablecoin"]', 1, '2026-08-01T00:00:00+00:00',
                     '2026-08-01T00:00:00+00:00', ?)""",
                [
                    change_id,
                    source,
                    f"id:{ref}",
                    title,
                    "sfcwarnspublicofsuspiciousstablecoininvestmentschemes",
                ],
            )
    rss_copy = Change(source_id="sfc-press-en", kind="new", title=title, item_key="id:26PR131")
    assert store.first_sighting("sfc-press-en", rss_copy, "2026-08-01T01:00:00+00:00", 86400) == 80
    other = Change(source_id="sfc-press-en", kind="new", title=title, item_key="id:26PR133")
    assert store.first_sighting("sfc-press-en", other, "2026-08-01T01:00:00+00:00", 86400) is None


def test_html_escapes_and_compact_dates_in_api_records_read_as_a_user_would(monitor, capsys):
    """An API that stores titles as HTML ("HKMA &amp; SFC"), and dates as 20260803 or a float Unix
    time: the alert reads "HKMA & SFC" with the day, and the title landing escaped is no edit."""
    link = "https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/08/2026080{}-3/"
    old = {"title": "Exchange Fund Abridged Balance Sheet", "link": link.format(1), "date": "2026-08-01"}
    new = {"title": "HKMA & SFC announce stablecoin licensing", "link": link.format(3), "date": "20260803"}
    state = {"records": [old]}
    monitor.site.routes["/public/press-releases"] = lambda handler: Response(
        200,
        json.dumps({"header": {"success": True}, "result": {"records": state["records"]}}).encode(),
        {"Content-Type": "application/json"},
    )
    monitor.write(HKMA_API)
    monitor.round(capsys)
    state["records"] = [new, old]
    code, out, _ = monitor.round(capsys)
    assert (
        code == 0 and "NEW: HKMA & SFC announce stablecoin licensing" in out and "Date:    2026-08-03" in out
    )
    escaped = dict(new, title="HKMA &amp; SFC announce stablecoin licensing", date=1785715200.0)
    state["records"] = [escaped, old]
    assert monitor.round(capsys)[:2] == (0, "")  # the same title and day, written otherwise
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM changes").fetchone() == (1,)


def test_a_correction_and_a_withdrawal_seen_through_the_feed_and_the_api_alert_once_each(monitor, capsys):
    """Only NEW was told once per release: a correction or a withdrawal came once per source."""
    from tests.conftest import ROUND2

    served: dict = {}
    _feed_and_english_api(monitor, served)  # the API answers with served["feed"] when set
    monitor.round(capsys)
    assert monitor.round(capsys, ROUND2)[1].count("NEW: ") == 1
    feed = (ROUND2 / "sfc/en/rss/press-releases.xml").read_text(encoding="utf-8")
    monitor.site.routes["/sfc/en/rss/press-releases.xml"] = lambda h: Response(
        200, served["feed"].encode(), {"Content-Type": "application/rss+xml"}
    )
    served["feed"] = feed.replace("joint circular", "joint guidance")  # corrected in both
    outs = [monitor.round(capsys, ROUND2)[1] for _ in range(2)]
    assert "".join(outs).count("CHANGED: SFC and HKMA issue joint guidance") == 1, outs
    start = served["feed"].rfind("<item>", 0, served["feed"].index("joint guidance"))
    end = served["feed"].index("</item>", start) + len("</item>")
    served["feed"] = served["feed"][:start] + served["feed"][end:]  # withdrawn from both
    outs = [monitor.round(capsys, ROUND2)[1] for _ in range(3)]
    assert "".join(outs).count("REMOVED: SFC and HKMA issue joint guidance") == 1, outs
