"""New items followed to their text: detail pages, the SFC's content API, linked PDFs, re-uploads,
and one alert for one release seen through several sources."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.localsite import Response
from monitor.store.blobs import Blobs
from tests.pdfs import make_pdf

HTML = {"Content-Type": "text/html; charset=utf-8"}
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
PDF = {"Content-Type": "application/pdf"}

HKMA_FEED = """[[sources]]
id = "hkma-press-en"
regulator = "HKMA"
kind = "rss"
url = "{base}/hkma/rss_press-release.xml"
detail = "link"
language = "en"
"""
GOV_FEED = """[[sources]]
id = "gov-press-en"
regulator = "FSTB"
kind = "rss"
url = "{base}/gia/rss/general_en.xml"
detail = "link"
language = "en"
"""
HKMA_CIRCULARS = """[[sources]]
id = "hkma-circulars-en"
regulator = "HKMA"
kind = "rss"
url = "{base}/hkma/rss_circulars.xml"
detail = "link"
"""
SFC_NEWS_API = """[[sources]]
id = "sfc-news-api-{lang}"
regulator = "SFC"
kind = "json"
method = "POST"
url = "{base}/edistributionWeb/api/news/search"
body = {{ lang = "{LANG}", category = "all", year = "all", pageNo = 0, pageSize = 20 }}
items_path = "items"
item_id = "newsRefNo"
title = "title"
date = "issueDate"
link = "https://apps.sfc.hk/edistributionWeb/gateway/{LANG}/news-and-announcements/news/doc?refNo={{newsRefNo}}"
detail = "{base}/edistributionWeb/api/news/content?refNo={{id}}&lang={LANG}"
detail_field = "html"
language = "{lang_code}"
"""


def sfc_news_api(lang: str) -> str:
    code = {"en": "en", "tc": "zh"}[lang]
    return SFC_NEWS_API.format(lang=lang, LANG=lang.upper(), lang_code=code, base="{base}")


def rss(base: str, items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 feed like the HKMA's and the Government's: no description worth reading."""
    entries = "".join(
        f"<item><title>{title}</title><link>{base}{path}</link><description></description>"
        f"<pubDate>{date}</pubDate></item>"
        for title, path, date in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Press releases</title>'
        f"<link>{base}/</link>{entries}</channel></rss>"
    ).encode()


def gov_release(title: str, paragraphs: list[str]) -> bytes:
    """An info.gov.hk press release page: site chrome, the release, and its "Ends/" footer."""
    body = "<br><br>".join(paragraphs)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><div id="header"><a href="/gia/">Press Releases</a> | <a href="/">GovHK</a></div>
<div id="contentBody"><span id="PRHeadlineSpan">{title}</span>
<span id="pressrelease" style="font-size:1em">  {body}<br><br>Ends/Thursday, January 22, 2026
<br>Issued at HKT 15:00<br><br>NNNN</span></div>
<div id="footer">2026 | Important notices | Privacy Policy</div></body></html>""".encode()


def hkma_release(title: str, paragraphs: list[str], pdf: str = "") -> bytes:
    """An hkma.gov.hk press release page; its attachments are linked PDFs."""
    text = "".join(f"<p>{p}</p>" for p in paragraphs)
    attachment = f'<p><a href="{pdf}">Annex (PDF File, 120 KB)</a></p>' if pdf else ""
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} - HKMA</title></head>
<body><header><nav><a href="/eng/">Home</a><a href="/eng/news-and-media/">News</a></nav></header>
<main><h1>{title}</h1>{text}{attachment}<p class="date">22 January 2026</p></main>
<footer>Last revision date: 22 January 2026</footer></body></html>""".encode()


class Feeds:
    """Routes whose answers change between rounds, like a regulator publishing."""

    def __init__(self, site):
        self.site = site
        self.items: dict[str, list[tuple[str, str, str]]] = {}
        self.pages: dict[str, tuple[int, bytes, dict]] = {}

    def feed(self, path: str, items: list[tuple[str, str, str]]) -> None:
        first = path not in self.items
        self.items[path] = items
        if first:
            self.site.routes[path] = lambda handler: Response(
                200, rss(self.site.base_url, self.items[path]), RSS
            )

    def page(self, path: str, body: bytes, headers: dict | None = None, status: int = 200) -> None:
        first = path not in self.pages
        self.pages[path] = (status, body, headers or HTML)
        if first:
            self.site.routes[path] = lambda handler: Response(*self.pages[path])

    def requested(self, path: str) -> int:
        return sum(1 for requested, _ in self.site.requests if requested.split("?")[0] == path)


def watch_circulars(monitor, capsys, settings: str = "") -> Feeds:
    """The HKMA circulars feed (following its links) with one old item, past its silent baseline;
    `settings`: extra [settings] lines."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_circulars.xml", [OLD_HKMA])
    monitor.write(HKMA_CIRCULARS)
    if settings:
        text = monitor.config.read_text().replace("max_bytes = 200000", f"max_bytes = 200000\n{settings}")
        monitor.config.write_text(text)
    assert monitor.round(capsys)[:2] == (0, "")
    return feeds


OLD_HKMA = ("Exchange Fund Position at end-December 2025", "/hkma/press/20260107-3/", "Wed, 07 Jan 2026")
OLD_GOV = ("LCQ1: Land supply", "/gia/general/202601/21/P2026012100300.htm", "Wed, 21 Jan 2026")
NEW_TITLE = "HKMA publishes guidance for licensed issuers"  # no topic term in the title


def test_a_release_is_classified_on_its_text_and_alerts_once_with_every_link(monitor, capsys):
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    feeds.feed("/gia/rss/general_en.xml", [OLD_GOV])
    monitor.write(HKMA_FEED, GOV_FEED)
    assert monitor.round(capsys)[:2] == (0, "")  # the baseline follows nothing
    assert feeds.requested("/hkma/press/20260107-3/") == 0

    text = [
        "The Hong Kong Monetary Authority (HKMA) today published guidance for licensed stablecoin "
        "issuers on the management of reserve assets.",
        "Licensed stablecoin issuers are expected to comply with the guidance from 1 March 2026.",
    ]
    hkma_path, gov_path = "/hkma/press/20260122-3/", "/gia/general/202601/22/P2026012200254.htm"
    feeds.page(hkma_path, hkma_release(NEW_TITLE, text))
    feeds.page(gov_path, gov_release(NEW_TITLE, ["The following is issued on behalf of the HKMA:", *text]))
    feeds.feed("/hkma/rss_press-release.xml", [(NEW_TITLE, hkma_path, "Thu, 22 Jan 2026"), OLD_HKMA])
    feeds.feed("/gia/rss/general_en.xml", [(NEW_TITLE, gov_path, "Thu, 22 Jan 2026"), OLD_GOV])
    code, out, _ = monitor.round(capsys)

    assert code == 0
    assert out.count(f"NEW: {NEW_TITLE}") == 1, out
    assert "stablecoin issuer" in out.split("Matched: ")[1].split("\n")[0]
    links = {line.split()[1] for line in out.splitlines() if line.startswith(("Link:", "Also:"))}
    assert links == {monitor.site.url(hkma_path), monitor.site.url(gov_path)}
    assert "English)" in out
    with sqlite3.connect(monitor.db) as conn:
        logged = conn.execute(
            "SELECT source_id, duplicate_of, body_status FROM changes ORDER BY id"
        ).fetchall()
        gov_text = conn.execute("SELECT text FROM documents WHERE url LIKE '%P2026012200254%'").fetchone()[0]
    assert len(logged) == 2 and [dup for _, dup, _ in logged].count(None) == 1
    assert {status for _, _, status in logged} == {"fetched"}
    gov_text = Blobs().unpack(gov_text).decode()
    assert "reserve assets" in gov_text
    for boilerplate in ("Ends/", "Issued at HKT", "NNNN", "Privacy Policy", "GovHK"):
        assert boilerplate not in gov_text


def test_the_sfc_content_api_and_its_linked_pdf_are_read(monitor, capsys):
    searches = {"items": [{"newsRefNo": "26PR120", "title": "Old release", "issueDate": "2026-07-30"}]}
    content_asked = []

    def search(handler):
        return Response(200, json.dumps(searches).encode(), {"Content-Type": "application/json"})

    def content(handler):
        content_asked.append(handler.path.split("?", 1)[1])
        html = (
            "<p>The Securities and Futures Commission (SFC) today published the conclusions of its "
            'consultation.</p><p>See the <a href="/files/26PR121-appendix.pdf">appendix</a>.</p>'
        )
        return Response(200, json.dumps({"html": html}).encode(), {"Content-Type": "application/json"})

    appendix = make_pdf(
        [
            "Appendix",
            "Requirements for perpetual contracts on virtual assets",
            "Platforms offering perpetual contracts to professional investors must ...",
        ]
    )
    monitor.site.routes["/edistributionWeb/api/news/search"] = search
    monitor.site.routes["/edistributionWeb/api/news/content"] = content
    monitor.site.routes["/files/26PR121-appendix.pdf"] = lambda h: Response(200, appendix, PDF)
    monitor.write(sfc_news_api("en"))
    assert monitor.round(capsys)[:2] == (0, "")

    new = {"newsRefNo": "26PR121", "title": "SFC concludes consultation", "issueDate": "2026-07-31"}
    searches["items"].insert(0, new)
    code, out, _ = monitor.round(capsys)
    assert code == 0
    assert content_asked == ["refNo=26PR121&lang=EN"]
    assert "NEW: SFC concludes consultation" in out
    # "Securities and Futures Commission" in the text is not "futures": only the appendix's terms count
    assert "Matched: derivatives (perpetual contract, virtual asset)" in out
    with sqlite3.connect(monitor.db) as conn:
        documents = json.loads(conn.execute("SELECT documents FROM changes").fetchone()[0])
        pdf_rows = conn.execute("SELECT sha256 FROM documents WHERE content_type = 'pdf'").fetchall()
        stored = conn.execute("SELECT content FROM bodies WHERE sha256 = ?", pdf_rows[0]).fetchone()[0]
    assert documents[1] == monitor.site.url("/files/26PR121-appendix.pdf")
    assert Blobs().unpack(stored) == appendix  # the PDF's exact bytes, kept as evidence


def test_an_item_whose_text_cannot_be_fetched_alerts_on_its_title(monitor, capsys):
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    feeds.page("/hkma/press/20260410-4/", b"<html><title>Service Unavailable</title></html>", status=503)
    feeds.page("/hkma/press/20260410-5/", b"<html><title>Service Unavailable</title></html>", status=503)
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [
            ("Granting of stablecoin issuer licences", "/hkma/press/20260410-4/", "Fri, 10 Apr 2026"),
            ("HKMA announces new phase of guidance", "/hkma/press/20260410-5/", "Fri, 10 Apr 2026"),
            OLD_HKMA,
        ],
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0  # the listing itself was read: not a source failure
    assert "NEW: Granting of stablecoin issuer licences" in out
    assert "Note:    body not fetched (HTTP 503" in out
    assert "new phase of guidance" not in out  # no topic in its title, and no text to find one in
    with sqlite3.connect(monitor.db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT body_status FROM changes ORDER BY id")]
    assert all(s.startswith("not fetched: HTTP 503") for s in statuses) and len(statuses) == 2


def test_an_item_whose_text_could_not_be_read_is_read_again_and_alerts_late(monitor, capsys):
    """Its title names no topic, its text does: the detail page down the round it was listed must
    not hide it for good."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    down = b"<html><title>Service Unavailable</title></html>"
    feeds.page("/hkma/press/20260410-4/", down, status=503)
    feeds.page("/hkma/press/20260410-5/", down, status=503)
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [
            ("Granting of stablecoin issuer licences", "/hkma/press/20260410-4/", "Fri, 10 Apr 2026"),
            (NEW_TITLE, "/hkma/press/20260410-5/", "Fri, 10 Apr 2026"),
            OLD_HKMA,
        ],
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0 and NEW_TITLE not in out  # no topic in its title, and no text yet
    alerted_asked = feeds.requested("/hkma/press/20260410-4/")
    assert monitor.round(capsys)[1] == ""  # still down: nothing, and no error for the listing
    text = ["Licensed stablecoin issuers must hold reserve assets.", "The stablecoin guidance applies."]
    feeds.page("/hkma/press/20260410-5/", hkma_release(NEW_TITLE, text))
    feeds.page("/hkma/press/20260410-4/", hkma_release("Granting of stablecoin issuer licences", text))
    code, out, _ = monitor.round(capsys)
    assert code == 0 and out.count("NEW: ") == 1 and f"NEW: {NEW_TITLE}" in out
    assert "Note:    alerted late: its text could be read only on a later round" in out
    assert monitor.round(capsys)[1] == ""  # alerted once
    assert (
        feeds.requested("/hkma/press/20260410-4/") == alerted_asked
    )  # alerted on its title: not asked again
    with sqlite3.connect(monitor.db) as conn:
        logged = conn.execute("SELECT title, topics, body_status FROM changes ORDER BY id").fetchall()
    assert logged[1][0] == NEW_TITLE and "stablecoin" in logged[1][1] and logged[1][2] == "fetched later"
    code, out, _ = monitor("show", "2", capsys=capsys)
    assert "stablecoin (" in out
    assert f"Text:      read on a later round from {monitor.site.url('/hkma/press/20260410-5/')}\n" in out
    code, out, _ = monitor("show", "1", capsys=capsys)
    assert "Text:      not fetched: HTTP 503 Service Unavailable: classified on its title alone\n" in out


def test_a_detail_page_that_keeps_failing_does_not_take_every_later_turn(monitor, capsys):
    """detail_limit = 2: one item's text is tried again per round. A's page is gone for good; B's
    was down for one round: B still gets its turn, and alerts."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    text = monitor.config.read_text().replace("max_bytes = 200000", "max_bytes = 200000\ndetail_limit = 2")
    monitor.config.write_text(text)
    monitor.round(capsys)
    feeds.page("/hkma/press/a/", b"<html><title>Not Found</title></html>", status=404)
    feeds.page("/hkma/press/b/", b"<html><title>Service Unavailable</title></html>", status=503)
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [("HKMA notice A", "/hkma/press/a/", "Fri, 10 Apr 2026"), (NEW_TITLE, "/hkma/press/b/", "Fri, 10 Apr 2026"),
         OLD_HKMA],
    )  # fmt: skip
    monitor.round(capsys)
    feeds.page(
        "/hkma/press/b/", hkma_release(NEW_TITLE, ["Licensed stablecoin issuers.", "Stablecoin reserves."])
    )
    outs = [monitor.round(capsys)[1] for _ in range(3)]
    assert "".join(outs).count(f"NEW: {NEW_TITLE}") == 1
    with sqlite3.connect(monitor.db) as conn:
        tries = conn.execute("SELECT tries, last_error FROM unread_tries").fetchall()
    assert tries[0][0] >= 1 and tries[0][1].startswith("not fetched: HTTP 404")


def test_new_items_beyond_the_detail_limit_alert_on_their_titles(monitor, capsys):
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.config.write_text(
        monitor.config.read_text().replace("max_bytes = 200000", "max_bytes = 200000\ndetail_limit = 1")
    )
    monitor.round(capsys)
    items = []
    for n in (1, 2, 3):
        path = f"/hkma/press/20260527-{n}/"
        feeds.page(path, hkma_release(f"Stablecoin update {n}", ["Licensed stablecoin issuers."]))
        items.append((f"Stablecoin update {n}", path, "Wed, 27 May 2026"))
    feeds.feed("/hkma/rss_press-release.xml", [*items, OLD_HKMA])
    code, out, _ = monitor.round(capsys)
    assert code == 0
    assert out.count("NEW: Stablecoin update") == 3
    assert out.count("body not fetched (more new items than [settings] detail_limit this round)") == 2
    assert sum(feeds.requested(path) for _, path, _ in items) == 1


def test_a_pdf_re_uploaded_under_the_same_url_is_a_change_with_a_text_diff(monitor, capsys):
    feeds = watch_circulars(monitor, capsys, 'document_recheck = "1s"')
    path, title = (
        "/media/eng/doc/20260527e1.pdf",
        "Guideline on supervision of stablecoin issuers (PDF File, 2 KB)",
    )
    lines = ["Guideline on supervision of licensed stablecoin issuers", "The annual licence fee is HK$1m."]
    feeds.page(path, make_pdf(lines), PDF)
    feeds.feed("/hkma/rss_circulars.xml", [(title, path, "Wed, 27 May 2026"), OLD_HKMA])
    code, out, _ = monitor.round(capsys)
    assert "NEW: Guideline on supervision of stablecoin issuers" in out

    time.sleep(1.1)
    feeds.page(path, make_pdf(lines, created="20260601090000+08'00'"), PDF)  # re-saved, same text
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")

    time.sleep(1.1)
    changed = [lines[0], "The annual licence fee is HK$2m."]
    feeds.page(path, make_pdf(changed, created="20260602090000+08'00'"), PDF)
    code, out, _ = monitor.round(capsys)
    assert code == 0
    assert "CHANGED: Guideline on supervision of stablecoin issuers" in out
    assert "+ The annual licence fee is HK$2m." in out
    assert "- The annual licence fee is HK$1m." in out
    with sqlite3.connect(monitor.db) as conn:
        change_id = conn.execute("SELECT id FROM changes WHERE kind = 'changed'").fetchone()[0]
    assert monitor("show", str(change_id), "--raw", capsys=capsys)[0] == 0
    code, before, _ = monitor("show", str(change_id), "--before", capsys=capsys)
    assert code == 0 and "HK$1m" in before  # the old file's bytes: its text is in its content stream


def test_english_and_chinese_copies_of_one_sfc_release_alert_once_naming_both(monitor, capsys):
    answers = {
        "EN": [{"newsRefNo": "26PR100", "title": "Old", "issueDate": "2026-07-01"}],
        "TC": [{"newsRefNo": "26PR100", "title": "舊新聞稿", "issueDate": "2026-07-01"}],
    }

    def search(handler):
        lang = json.loads(handler.body)["lang"]
        return Response(
            200, json.dumps({"items": answers[lang]}).encode(), {"Content-Type": "application/json"}
        )

    def content(handler):
        return Response(200, json.dumps({"html": "<p>Stablecoin licensing.</p>"}).encode(), {})

    monitor.site.routes["/edistributionWeb/api/news/search"] = search
    monitor.site.routes["/edistributionWeb/api/news/content"] = content
    monitor.write(sfc_news_api("en"), sfc_news_api("tc"))
    monitor.round(capsys)
    answers["EN"].insert(
        0, {"newsRefNo": "26PR101", "title": "SFC and HKMA on stablecoins", "issueDate": "2026-07-31"}
    )
    answers["TC"].insert(
        0, {"newsRefNo": "26PR101", "title": "證監會與金管局就穩定幣", "issueDate": "2026-07-31"}
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0
    assert out.count("NEW: ") == 1, out
    also = [line for line in out.splitlines() if line.startswith("Also:")]
    assert len(also) == 1  # whichever language was recorded first alerts; the other is listed
    other = "(sfc-news-api-tc, Chinese)" if "/TC/" in also[0] else "(sfc-news-api-en, English)"
    assert also[0].endswith(other)
    for lang in ("EN", "TC"):
        assert f"/{lang}/news-and-announcements/news/doc?refNo=26PR101" in out


def test_detail_settings_are_checked(tmp_path):
    config = tmp_path / "sources.toml"
    topics = '[topics.stablecoin]\nterms = ["stablecoin"]\n\n'
    config.write_text(
        topics
        + '[[sources]]\nid = "sfc-news"\nregulator = "SFC"\nkind = "rss"\nurl = "https://www.sfc.hk/rss"\n'
        'detail = "https://apps.sfc.hk/api/content?refNo={ref}"\n'
    )
    try:
        load_config(config)
    except ConfigError as exc:
        assert "sfc-news" in str(exc) and "detail" in str(exc) and "{ref}" in str(exc)
        assert "line 9" in str(exc)  # the detail key's own line
    else:
        raise AssertionError("an unknown template field was accepted")
    config.write_text(
        topics
        + '[[sources]]\nid = "sfc-news"\nregulator = "SFC"\nkind = "rss"\nurl = "https://www.sfc.hk/rss"\n'
        'detail_select = "main"\n'
    )
    try:
        load_config(config)
    except ConfigError as exc:
        assert "detail_select" in str(exc) and "needs detail" in str(exc)
    else:
        raise AssertionError("detail_select without detail was accepted")


def test_the_chinese_government_footer_is_stripped():
    from monitor.extract.document import strip_footer

    lines = ["下稿代香港金融管理局發出︰", "金管局今日發布穩定幣發行人指引。", "完", "2026年1月22日（星期四）",
             "香港時間15時00分發出"]  # fmt: skip
    assert strip_footer(lines) == lines[:2]
    english = ["The HKMA today ...", "Ends/Thursday, January 22, 2026", "Issued at HKT 15:00", "NNNN"]
    assert strip_footer(english) == english[:1]


def test_the_hkma_english_and_chinese_pages_of_one_release_alert_once(monitor, capsys):
    feeds = Feeds(monitor.site)
    chinese_feed = HKMA_FEED.replace("hkma-press-en", "hkma-press-tc").replace(
        "rss_press-release.xml", "chi/rss_press-release.xml").replace('"en"', '"zh"')  # fmt: skip
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    feeds.feed(
        "/hkma/chi/rss_press-release.xml", [("外匯基金", "/hkma/chi/press/20260107-3/", "Wed, 07 Jan 2026")]
    )
    monitor.write(HKMA_FEED.replace("detail", "# detail"), chinese_feed.replace("detail", "# detail"))
    monitor.round(capsys)
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [
            ("Granting of stablecoin issuer licences", "/hkma/eng/press/20260410-4/", "Fri, 10 Apr 2026"),
            OLD_HKMA,
        ],
    )
    feeds.feed(
        "/hkma/chi/rss_press-release.xml",
        [("批出穩定幣發行人牌照", "/hkma/chi/press/20260410-4/", "Fri, 10 Apr 2026")],
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0
    assert out.count("NEW: ") == 1, out
    assert "/hkma/chi/press/20260410-4/" in out and "/hkma/eng/press/20260410-4/" in out


def test_document_settings_accept_never_and_refuse_nonsense(tmp_path):
    config = tmp_path / "sources.toml"
    source = '[[sources]]\nid = "sfc-news"\nregulator = "SFC"\nkind = "rss"\nurl = "https://www.sfc.hk/rss"\n'
    topics = '[topics.stablecoin]\nterms = ["stablecoin"]\n\n'
    config.write_text('[settings]\ndocument_recheck = "0s"\n' + topics + source)
    assert load_config(config).settings.document_recheck == 0
    config.write_text("[settings]\ndocument_max_bytes = 0\n" + topics + source)
    try:
        load_config(config)
    except ConfigError as exc:
        assert str(exc).endswith("[settings]: document_max_bytes: must be at least 1024 (bytes) (line 2)")
    else:
        raise AssertionError("a zero document size cap was accepted")


def test_a_fraud_alert_about_a_fake_login_page_is_read_as_a_release(monitor, capsys):
    """Its title names a login screen; only a watched listing or page titled so is not the content."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    assert monitor.round(capsys)[:2] == (0, "")
    title = "Fraudulent website and internet banking login screen related to Harbour Digital Bank"
    text = [
        "The fraudulent website claims to offer a stablecoin wallet of the bank's licensed stablecoin issuer."
    ] * 2
    path = "/hkma/press/20260123-4/"
    feeds.page(path, hkma_release(title, text))
    feeds.feed("/hkma/rss_press-release.xml", [(title, path, "Fri, 23 Jan 2026"), OLD_HKMA])
    code, out, _ = monitor.round(capsys)
    assert code == 0 and f"NEW: {title}" in out
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT body_status FROM changes").fetchall() == [("fetched",)]


def test_a_short_chinese_release_is_read_not_taken_for_a_script_shell(monitor, capsys):
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    text = ["穩定幣發行人指引。持牌穩定幣發行人須遵守。"]  # with its heading, under 40 characters
    page = hkma_release("指引", text).replace(b'<p class="date">22 January 2026</p>', b"")
    feeds.page("/hkma/press/20260410-6/", page)
    feeds.feed(
        "/hkma/rss_press-release.xml", [("指引", "/hkma/press/20260410-6/", "Fri, 10 Apr 2026"), OLD_HKMA]
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "NEW: 指引" in out and "body not fetched" not in out


LOGIN = b"<html><head><title>Secure Login</title></head><body><form>User <input name=u></form></body></html>"
MAINTENANCE = hkma_release("Scheduled maintenance", ["The website is under maintenance until 6 pm tonight."])
PLACEHOLDER = hkma_release("", ["Document not available."])


def _login_redirect(feeds, path):
    feeds.page(path, b"", {"Location": "/login/"}, status=302)
    feeds.page("/login/", LOGIN)


@pytest.mark.parametrize(
    "not_there_yet",
    [
        pytest.param(_login_redirect, id="redirected-to-a-login-form"),
        pytest.param(lambda feeds, path: feeds.page(path, MAINTENANCE), id="maintenance-notice-with-200"),
        pytest.param(lambda feeds, path: feeds.page(path, PLACEHOLDER), id="placeholder-not-filled-in-yet"),
    ],
)
def test_a_release_page_that_is_not_there_yet_is_read_again_and_alerts_late(monitor, capsys, not_there_yet):
    """A page answering 200 with a sign-in form, a maintenance notice or a placeholder is not the
    release's text: taken as it, a release whose title names no topic was never alerted."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    path = "/hkma/press/20260410-5/"
    not_there_yet(feeds, path)
    feeds.feed("/hkma/rss_press-release.xml", [(NEW_TITLE, path, "Fri, 10 Apr 2026"), OLD_HKMA])
    assert monitor.round(capsys)[:2] == (0, "")
    text = ["Licensed stablecoin issuers must hold reserve assets.", "The stablecoin guidance applies."]
    feeds.page(path, hkma_release(NEW_TITLE, text), status=200)
    code, out, _ = monitor.round(capsys)
    assert code == 0 and f"NEW: {NEW_TITLE}" in out and "alerted late" in out


def test_a_release_whose_annex_pdf_failed_is_read_again_with_it(monitor, capsys):
    """The page goes up minutes before its annex: a topic only in the annex still alerts, late."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    path, pdf = "/hkma/press/20260410-7/", "/media/eng/doc/20260410e1.pdf"
    feeds.page(path, hkma_release(NEW_TITLE, ["The HKMA issues the annexed guidance today."] * 2, pdf=pdf))
    feeds.page(pdf, b"<html><title>Service Unavailable</title></html>", status=503)
    feeds.feed("/hkma/rss_press-release.xml", [(NEW_TITLE, path, "Fri, 10 Apr 2026"), OLD_HKMA])
    assert monitor.round(capsys)[:2] == (0, "")
    with sqlite3.connect(monitor.db) as conn:
        (status,) = conn.execute("SELECT body_status FROM changes").fetchone()
    assert status.startswith(f"partly read: a linked PDF was not read ({monitor.site.url(pdf)}: HTTP 503")
    feeds.page(
        pdf, make_pdf(["Guideline for licensed stablecoin issuers", "Stablecoin reserve assets."]), PDF
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0 and f"NEW: {NEW_TITLE}" in out and "alerted late" in out
    assert feeds.requested(path) == 1  # the page itself was read: kept, not asked again


def test_a_pdf_url_that_now_redirects_to_a_web_page_is_no_re_upload(monitor, capsys):
    feeds = watch_circulars(monitor, capsys, 'document_recheck = "1s"')
    path, title = "/media/eng/doc/20260527e1.pdf", "Guideline on stablecoin issuers (PDF File, 2 KB)"
    feeds.page(path, make_pdf(["Guideline on supervision of licensed stablecoin issuers", "Fees."]), PDF)
    feeds.feed("/hkma/rss_circulars.xml", [(title, path, "Wed, 27 May 2026"), OLD_HKMA])
    assert "NEW: Guideline on stablecoin issuers" in monitor.round(capsys)[1]
    time.sleep(1.1)
    feeds.page(path, b"", {"Location": "/hkma/eng/"}, status=302)
    feeds.page(
        "/hkma/eng/", hkma_release("Hong Kong Monetary Authority", ["Welcome to the HKMA website."] * 3)
    )
    assert monitor.round(capsys)[:2] == (0, "")  # moved away: not "re-uploaded with different text"
    time.sleep(1.1)
    feeds.page(path, make_pdf(["Guideline on supervision of licensed stablecoin issuers", "Fees."]), PDF, 200)
    assert monitor.round(capsys)[:2] == (0, "")  # back as it was


def test_a_release_reissued_in_both_languages_on_info_gov_hk_alerts_once(monitor, capsys):
    """The HKMA's English and Chinese copies first (one release by link), then the Government's
    copies "issued on behalf of the HKMA" (each by its title): the Chinese one is known only
    through the HKMA's Chinese copy, itself a repeat."""
    feeds = Feeds(monitor.site)
    chinese_hkma = HKMA_FEED.replace("hkma-press-en", "hkma-press-tc").replace(
        "rss_press-release.xml", "chi/rss_press-release.xml").replace('"en"', '"zh"')  # fmt: skip
    chinese_gov = GOV_FEED.replace("gov-press-en", "gov-press-zh").replace("_en.xml", "_zh.xml").replace(
        '"en"', '"zh"')  # fmt: skip
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    feeds.feed(
        "/hkma/chi/rss_press-release.xml", [("外匯基金", "/hkma/chi/press/20260107-3/", "Wed, 07 Jan 2026")]
    )
    feeds.feed("/gia/rss/general_en.xml", [OLD_GOV])
    feeds.feed(
        "/gia/rss/general_zh.xml",
        [("立法會一題", "/gia/general/202601/21/P2026012100301.htm", "Wed, 21 Jan 2026")],
    )
    sources = (HKMA_FEED, chinese_hkma, GOV_FEED, chinese_gov)
    monitor.write(*(source.replace("detail", "# detail") for source in sources))
    monitor.round(capsys)
    english, chinese = "Granting of stablecoin issuer licences", "批出穩定幣發行人牌照"
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [(english, "/hkma/eng/press/20260410-4/", "Fri, 10 Apr 2026"), OLD_HKMA],
    )
    feeds.feed(
        "/hkma/chi/rss_press-release.xml", [(chinese, "/hkma/chi/press/20260410-4/", "Fri, 10 Apr 2026")]
    )
    assert monitor.round(capsys)[1].count("NEW: ") == 1
    feeds.feed(
        "/gia/rss/general_en.xml",
        [(english, "/gia/general/202604/10/P2026041000254.htm", "Fri, 10 Apr 2026")],
    )
    feeds.feed(
        "/gia/rss/general_zh.xml",
        [(chinese, "/gia/general/202604/10/P2026041000258.htm", "Fri, 10 Apr 2026")],
    )
    code, out, _ = monitor("run", "--once", "--dry-run", "--all", capsys=capsys)
    assert (code, out) == (0, "")  # what a dry run would alert: nothing either
    code, out, _ = monitor.round(capsys)
    assert (code, out) == (0, "")  # both copies repeat the release alerted
    with sqlite3.connect(monitor.db) as conn:
        firsts = {
            first
            for (first,) in conn.execute("SELECT duplicate_of FROM changes WHERE duplicate_of IS NOT NULL")
        }
    assert len(firsts) == 1


@pytest.mark.parametrize(
    ("href", "words"),
    [
        pytest.param(
            "/edistributionWeb/api/news/openAppendix?lang=EN&refNo=26PR121&appendix=0",
            "here",
            id="sfc-open-appendix-url",
        ),
        pytest.param(
            "/edistributionWeb/api/news/file?id=77",
            "Appendix (PDF, 120 KB)",
            id="a-pdf-by-its-words-on-the-same-site",
        ),
    ],
)
def test_an_appendix_whose_url_names_no_pdf_is_read(monitor, capsys, href, words):
    """A topic only in the appendix: missed when only links ending .pdf were followed. A link to
    another site that says "PDF" (a reader download) is not the release's."""
    searches = {"items": [{"newsRefNo": "26PR120", "title": "Old release", "issueDate": "2026-07-30"}]}
    html = (
        "<p>The SFC today published the conclusions of its consultation on platform requirements.</p>"
        f'<p>See the appendix <a href="{href}">{words}</a>. '
        '<a href="https://get.adobe.example/reader/">Get Adobe PDF Reader</a></p>'
    )
    monitor.site.routes["/edistributionWeb/api/news/search"] = lambda h: Response(
        200, json.dumps(searches).encode(), {"Content-Type": "application/json"}
    )
    monitor.site.routes["/edistributionWeb/api/news/content"] = lambda h: Response(
        200, json.dumps({"html": html}).encode(), {"Content-Type": "application/json"}
    )
    appendix = make_pdf(["Requirements for stablecoin issuers", "Licensed stablecoin issuers must ..."])
    monitor.site.routes[href.split("?")[0]] = lambda h: Response(
        200, appendix, {"Content-Type": "application/octet-stream"}
    )
    monitor.write(sfc_news_api("en"))
    assert monitor.round(capsys)[:2] == (0, "")
    searches["items"].insert(
        0, {"newsRefNo": "26PR121", "title": "SFC concludes consultation", "issueDate": "2026-07-31"}
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "NEW: SFC concludes consultation" in out and "Matched: stablecoin" in out
    with sqlite3.connect(monitor.db) as conn:
        documents = json.loads(conn.execute("SELECT documents FROM changes").fetchone()[0])
    assert documents[1:] == [monitor.site.url(href)]


def test_a_release_the_chinese_api_lists_under_both_titles_is_one_release(monitor, capsys):
    """The SFC's TC listing carries a new release under its English title and its Chinese one, then
    the Chinese one alone: one alert, its text read by its reference number, no "removed"."""
    old = {"newsRefNo": "26PR120", "title": "舊新聞稿", "issueDate": "2026-07-30"}
    searches = {"items": [old]}
    asked = []

    def content(handler):
        asked.append(handler.path.split("?", 1)[1])
        html = "<p>證監會今日就穩定幣發出警告。</p><p>投資者應小心可疑的穩定幣投資計劃。</p>"
        return Response(200, json.dumps({"html": html}).encode(), {"Content-Type": "application/json"})

    monitor.site.routes["/edistributionWeb/api/news/search"] = lambda h: Response(
        200, json.dumps(searches).encode(), {"Content-Type": "application/json"}
    )
    monitor.site.routes["/edistributionWeb/api/news/content"] = content
    monitor.write(sfc_news_api("tc"))
    assert monitor.round(capsys)[:2] == (0, "")
    english = {"newsRefNo": "26PR134", "title": "SFC issues warning on stablecoin", "issueDate": "2026-08-04"}
    chinese = dict(english, title="證監會就穩定幣發出警告")
    searches["items"] = [english, chinese, old]
    code, out, _ = monitor.round(capsys)
    assert code == 0 and out.count("NEW: ") == 1 and asked == ["refNo=26PR134&lang=TC"]
    searches["items"] = [chinese, old]
    assert monitor.round(capsys)[:2] == (0, "")
    assert monitor.round(capsys)[:2] == (0, "")  # nor removed once confirmed


def test_a_link_to_another_page_is_not_taken_for_the_releases_attachment():
    """ "Appendix 6 of the Code of Conduct" is a page of its own: read into the circular's text, its
    virtual-asset wording would alert; taking the one slot of detail_pdfs, it hid the real annex."""
    from dataclasses import replace

    from monitor.extract.document import read_document
    from monitor.models import Page, Source

    source = replace(
        Source("sfc-circulars", "SFC", "html", "https://www.sfc.hk/en/circulars", ("virtual-assets",), 900),
        detail="link",
        detail_pdfs=1,
    )
    html = """<html><head><title>Circular on client agreements</title></head><body><main>
<p>Review client agreements against the <a href="/en/Codes/Code-of-conduct#appendix6">Appendix 6 of the
Code of Conduct</a> (the Code as a <a href="/en/Codes/Code-of-conduct">PDF</a>).</p>
<p>See the <a href="/files/circulars/26EC12-annex.pdf">Annex</a>.</p></main></body></html>"""
    url = "https://www.sfc.hk/en/circulars/26EC12"
    page = Page(source.id, url, url, 200, {"content-type": "text/html"}, html.encode(), html, "utf-8",
                "2026-08-03T00:00:00+00:00", 1, "x")  # fmt: skip
    annex = "https://www.sfc.hk/files/circulars/26EC12-annex.pdf"
    assert read_document(source, page).links == (annex,)  # a link named a PDF by its URL first
    two = read_document(replace(source, detail_pdfs=2), page).links
    assert two == (annex, "https://www.sfc.hk/en/Codes/Code-of-conduct")  # read only if it is a PDF


def test_a_link_saying_pdf_that_answers_with_a_web_page_adds_nothing_to_the_release(monitor, capsys):
    searches = {"items": [{"newsRefNo": "26PR120", "title": "Old release", "issueDate": "2026-07-30"}]}
    html = (
        "<p>The SFC today announced the results of its annual survey of fund managers.</p>"
        '<p>The full report: <a href="/edistributionWeb/gateway/EN/other-page">PDF</a></p>'
    )
    monitor.site.routes["/edistributionWeb/api/news/search"] = lambda h: Response(
        200, json.dumps(searches).encode(), {"Content-Type": "application/json"}
    )
    monitor.site.routes["/edistributionWeb/api/news/content"] = lambda h: Response(
        200, json.dumps({"html": html}).encode(), {"Content-Type": "application/json"}
    )
    other = hkma_release("Stablecoin issuers", ["Licensed stablecoin issuers must hold reserves."] * 3)
    monitor.site.routes["/edistributionWeb/gateway/EN/other-page"] = lambda h: Response(200, other, HTML)
    monitor.write(sfc_news_api("en"))
    assert monitor.round(capsys)[:2] == (0, "")
    searches["items"].insert(
        0, {"newsRefNo": "26PR121", "title": "SFC survey results", "issueDate": "2026-07-31"}
    )
    assert monitor.round(capsys)[:2] == (0, "")  # the other page's stablecoin words are not this release's
    with sqlite3.connect(monitor.db) as conn:
        (documents,) = conn.execute("SELECT documents FROM changes").fetchone()
    assert len(json.loads(documents)) == 1


def test_a_release_on_topic_by_its_text_alerts_its_correction_and_withdrawal_too(monitor, capsys):
    """Only its NEW read its text: its later CHANGED and REMOVED, classified on the title alone,
    were logged on no topic and never alerted."""
    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_FEED)
    monitor.round(capsys)
    path = "/hkma/press/20260410-5/"
    feeds.page(path, hkma_release(NEW_TITLE, ["Licensed stablecoin issuers must hold reserves."] * 2))
    feeds.feed("/hkma/rss_press-release.xml", [(NEW_TITLE, path, "Fri, 10 Apr 2026"), OLD_HKMA])
    assert f"NEW: {NEW_TITLE}" in monitor.round(capsys)[1]
    corrected = NEW_TITLE + " (revised)"
    feeds.feed("/hkma/rss_press-release.xml", [(corrected, path, "Fri, 10 Apr 2026"), OLD_HKMA])
    outs = [monitor.round(capsys)[1] for _ in range(2)]  # a correction is confirmed a round later
    assert "".join(outs).count(f"CHANGED: {corrected}") == 1
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    outs = [monitor.round(capsys)[1] for _ in range(2)]  # a withdrawal too
    assert "".join(outs).count(f"REMOVED: {corrected}") == 1
    assert "Matched: stablecoin" in outs[1]
