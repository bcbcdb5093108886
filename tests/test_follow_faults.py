"""Following items to their text when documents misbehave: odd PDFs, withdrawn PDFs, re-uploads
seen first through another item, oversized files, and the dry run."""

from __future__ import annotations

import sqlite3
import time

from monitor.extract import document
from monitor.extract.document import read_document
from monitor.models import Page, Source
from tests.pdfs import make_pages_pdf, make_pdf, text_page
from tests.test_follow import HKMA_CIRCULARS, OLD_HKMA, PDF, Feeds, watch_circulars


def broken_pdf() -> bytes:
    # pypdf 7 raises AssertionError("mypy") on an indirect reference inside a content stream array
    return make_pdf(["x"]).replace(b"(x) '", b"[1 0 R] TJ")


def test_an_odd_pdf_does_not_wedge_the_source(monitor, capsys):
    feeds = watch_circulars(monitor, capsys)
    feeds.page("/media/odd.pdf", broken_pdf(), PDF)
    feeds.page("/media/good.pdf", make_pdf(["Guideline for licensed stablecoin issuers"]), PDF)
    feeds.feed(
        "/hkma/rss_circulars.xml",
        [
            ("Stablecoin issuers: odd circular", "/media/odd.pdf", "Wed, 27 May 2026"),
            ("Stablecoin issuers: good circular", "/media/good.pdf", "Wed, 27 May 2026"),
            OLD_HKMA,
        ],
    )
    code, out, err = monitor.round(capsys)
    assert code == 0 and "source hkma-circulars-en failed" not in err  # the listing itself was read
    assert "NEW: Stablecoin issuers: good circular" in out
    assert "NEW: Stablecoin issuers: odd circular" in out
    assert "body not fetched (PDF cannot be read" in out
    assert monitor.round(capsys)[:2] == (0, "")  # nothing is reported twice


def read_pdf(body: bytes) -> str:
    source = Source("hkma-circulars-en", "HKMA", "rss", "https://www.hkma.gov.hk/", (), 900.0)
    url = "https://www.hkma.gov.hk/media/annex.pdf"
    headers = {"content-type": "application/pdf"}
    page = Page(source.id, url, url, 200, headers, body, "", "", "2026-12-06T03:00:00+00:00", 40, "")
    return read_document(source, page).text


def test_a_pdf_page_of_millions_of_instructions_is_left_out_not_read_for_minutes(caplog):
    """~26 KB of PDF, one page of 1.2 MB of text operators: pypdf would read it for seconds, and a
    few times more of them for minutes (a page that big is no regulator's text, it is an attack)."""
    huge = b"BT /F1 1 Tf " + b"(stablecoin ) Tj 0 -1 Td " * 48_000 + b"ET"
    body = make_pages_pdf(
        [text_page("Guideline for licensed stablecoin issuers"), huge, text_page("Annex B")]
    )
    assert len(body) < 30_000
    assert read_pdf(body) == "Guideline for licensed stablecoin issuers\nAnnex B"
    assert (
        "PDF https://www.hkma.gov.hk/media/annex.pdf: pages [2] not read: over 1000000 bytes" in caplog.text
    )


def cpu_clock(monkeypatch, seconds_per_look: float) -> None:
    """Each look at the reading thread's CPU clock (one per drawing instruction) finds it later."""
    looks = iter(range(100_000))
    monkeypatch.setattr(document, "cpu_seconds", lambda: next(looks) * seconds_per_look)


def test_a_pdf_is_read_for_ten_seconds_of_cpu_at_most(monkeypatch, caplog):
    cpu_clock(monkeypatch, 1.0)  # a page of text_page() is 6 instructions: page 2 runs past 10 s
    body = make_pages_pdf([text_page(f"Page {n} of the annex") for n in range(1, 6)])
    assert read_pdf(body) == "Page 1 of the annex"
    assert "PDF https://www.hkma.gov.hk/media/annex.pdf: read to page 1 only (10 s of CPU)" in caplog.text


def test_a_page_drawing_one_form_a_thousand_times_is_cut_at_the_cpu_budget(monkeypatch, caplog):
    """A page of 8 KB of `/Fm0 Do` draws a small form again and again: the budget is looked at
    in every drawing of it, not only between pages."""
    cpu_clock(monkeypatch, 0.01)
    form = text_page("Stablecoin reserve notice")
    body = make_pages_pdf([text_page("Guideline for licensed stablecoin issuers"), b"/Fm0 Do " * 1000], form)
    assert read_pdf(body) == "Guideline for licensed stablecoin issuers"
    assert "read to page 1 only (10 s of CPU)" in caplog.text


def test_a_pdf_page_drawing_a_form_of_millions_of_instructions_is_left_out(caplog):
    huge = b"BT /F1 1 Tf " + b"(stablecoin ) Tj 0 -1 Td " * 48_000 + b"ET"
    body = make_pages_pdf([text_page("Guideline for licensed stablecoin issuers"), b"/Fm0 Do"], huge)
    assert read_pdf(body) == "Guideline for licensed stablecoin issuers"
    assert "pages [2] not read: over 1000000 bytes of drawing instructions" in caplog.text


def test_a_pdf_is_read_for_200_000_characters_at_most():
    lines = [
        f"Line {n:04d} of a long annex on stablecoin reserves, redemption and disclosure" for n in range(50)
    ]
    body = make_pages_pdf([text_page(*lines)] * 100)  # ~4,000 characters a page
    text = read_pdf(body)
    assert 199_000 < len(text) <= 200_000 and text.startswith("Line 0000 of a long annex")


def test_a_pdf_that_keeps_failing_its_recheck_does_not_starve_the_others(monitor, capsys):
    feeds = watch_circulars(monitor, capsys, 'document_recheck = "1s"\ndetail_limit = 2')
    items = []
    for n in (1, 2):  # detail_limit // 2 == 1 recheck per round
        feeds.page(f"/media/{n}.pdf", make_pdf([f"Stablecoin circular {n}"]), PDF)
        items.append((f"Stablecoin circular {n}", f"/media/{n}.pdf", "Wed, 27 May 2026"))
    feeds.feed("/hkma/rss_circulars.xml", [items[0], OLD_HKMA])
    monitor.round(capsys)
    time.sleep(1.1)
    feeds.feed("/hkma/rss_circulars.xml", [items[1], items[0], OLD_HKMA])
    monitor.round(capsys)
    feeds.page("/media/1.pdf", b"gone", status=404)  # the first PDF was withdrawn
    feeds.page("/media/2.pdf", make_pdf(["Stablecoin circular 2", "Licence fee changed"]), PDF)
    for _ in range(4):
        time.sleep(1.1)
        monitor.round(capsys)
    assert feeds.requested("/media/2.pdf") > 1, "PDF 2 was never rechecked"
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM changes WHERE kind = 'changed'").fetchone()[0] == 1


def _page(source_id: str, body: bytes = b"x"):
    import hashlib

    from monitor.models import Page

    return Page(
        source_id,
        "https://x/",
        "https://x/",
        200,
        {},
        body,
        "",
        "",
        "2026-01-22T07:00:00+00:00",
        1,
        hashlib.sha256(body).hexdigest(),
    )


def test_a_duplicate_with_more_topics_still_reaches_chats_that_only_want_those(tmp_path):
    from monitor.models import Change, Snapshot, Source
    from monitor.store import Store

    store = Store.open(tmp_path / "m.db")
    recipients = {"all": None, "stablecoin-only": frozenset({"stablecoin"})}
    src = {
        n: Source(n, "SFC", "json", "https://x/", ("stablecoin", "virtual-assets"), 60) for n in ("en", "tc")
    }
    store.sync_sources(list(src.values()))
    for n, topics in (("en", ("virtual-assets",)), ("tc", ("stablecoin", "virtual-assets"))):
        store.record_snapshot(src[n], _page(n), None, Snapshot("items"), [], recipients)  # baseline
        change = Change(n, "new", f"release {n}", item_key="id:26PR101", link=f"https://x/{n}", topics=topics)
        store.record_snapshot(
            src[n], _page(n, n.encode()), Snapshot("items"), Snapshot("items"), [change], recipients
        )
    chats = [r[0] for r in store.db.execute("SELECT chat FROM outbox")]
    assert "stablecoin-only" in chats, chats
    # That copy is the stablecoin desk's alert, with its own buttons: a review of the first alert
    # by another desk does not close it.
    store.add_review(1, "dismissed", "aml-desk", "not ours")
    assert (store.change(1).state, store.change(2).state) == ("dismissed", "new")


def test_prune_keeps_the_pdf_bytes_a_later_re_upload_will_need(monitor, capsys):
    feeds = watch_circulars(monitor, capsys)
    feeds.page("/media/g.pdf", make_pdf(["Guideline for licensed stablecoin issuers"]), PDF)
    feeds.feed(
        "/hkma/rss_circulars.xml", [("Stablecoin guideline", "/media/g.pdf", "Wed, 27 May 2026"), OLD_HKMA]
    )
    monitor.round(capsys)
    with sqlite3.connect(monitor.db) as conn:
        sha = conn.execute("SELECT sha256 FROM documents").fetchone()[0]
        conn.execute("UPDATE bodies SET created_at = '2000-01-01T00:00:00+00:00'")
    assert monitor("prune", "--keep-days", "30", capsys=capsys)[0] == 0
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM bodies WHERE sha256 = ?", [sha]).fetchone()[0] == 1


def test_a_too_big_pdf_names_the_setting_to_raise(monitor, capsys):
    feeds = watch_circulars(monitor, capsys, "document_max_bytes = 1024")
    feeds.page(
        "/media/g.pdf",
        make_pdf([f"Guideline for licensed stablecoin issuers, paragraph {n}" for n in range(40)]),
        PDF,
    )
    feeds.feed(
        "/hkma/rss_circulars.xml", [("Stablecoin guideline", "/media/g.pdf", "Wed, 27 May 2026"), OLD_HKMA]
    )
    _, out, _ = monitor.round(capsys)
    note = next(line for line in out.splitlines() if line.startswith("Note:"))
    assert (
        note
        == "Note:    body not fetched (body larger than 1,024 bytes (raise [settings] document_max_bytes if this is expected))"
    )


def test_dry_run_stores_nothing(monitor, capsys):
    feeds = watch_circulars(monitor, capsys)
    feeds.page("/media/g.pdf", make_pdf(["Guideline for licensed stablecoin issuers"]), PDF)
    feeds.feed(
        "/hkma/rss_circulars.xml", [("Stablecoin guideline", "/media/g.pdf", "Wed, 27 May 2026"), OLD_HKMA]
    )

    def counts():
        with sqlite3.connect(monitor.db) as conn:
            return [
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("documents", "bodies", "changes", "fetches", "outbox")
            ]

    before = counts()
    code, out, _ = monitor("run", "--once", "--all", "--dry-run", capsys=capsys)
    assert code == 0 and "Stablecoin guideline" in out
    assert counts() == before


def test_a_re_upload_of_an_on_topic_pdf_alerts_even_if_the_changed_lines_do_not_name_the_topic(
    monitor, capsys
):
    feeds = watch_circulars(monitor, capsys, 'document_recheck = "1s"')
    path, title = "/media/g.pdf", "Guideline on supervision of licensed issuers (PDF File, 2 KB)"
    lines = ["Licensed stablecoin issuers", "Stablecoin reserve assets", "The annual licence fee is HK$1m."]
    feeds.page(path, make_pdf(lines), PDF)
    feeds.feed("/hkma/rss_circulars.xml", [(title, path, "Wed, 27 May 2026"), OLD_HKMA])
    _, out, _ = monitor.round(capsys)
    assert "NEW: Guideline on supervision of licensed issuers" in out  # on topic through its text
    time.sleep(1.1)
    feeds.page(
        path, make_pdf([*lines[:2], "The annual licence fee is HK$2m."], created="20260602090000+08'00'"), PDF
    )
    _, out, _ = monitor.round(capsys)
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM changes WHERE kind = 'changed'").fetchone()[0] == 1
    assert "CHANGED: Guideline on supervision of licensed issuers" in out, out


def test_a_re_upload_is_not_swallowed_when_another_item_links_the_same_pdf(monitor, capsys):
    from tests.test_follow import HKMA_FEED, hkma_release

    feeds = Feeds(monitor.site)
    feeds.feed("/hkma/rss_circulars.xml", [OLD_HKMA])
    feeds.feed("/hkma/rss_press-release.xml", [OLD_HKMA])
    monitor.write(HKMA_CIRCULARS, HKMA_FEED)
    monitor.config.write_text(
        monitor.config.read_text().replace(
            "max_bytes = 200000", 'max_bytes = 200000\ndocument_recheck = "1s"'
        )
    )
    monitor.round(capsys)
    pdf = "/media/eng/doc/20260527e1.pdf"
    lines = ["Guideline on licensed stablecoin issuers", "The annual licence fee is HK$1m."]
    feeds.page(pdf, make_pdf(lines), PDF)
    feeds.feed(
        "/hkma/rss_circulars.xml",
        [("Stablecoin guideline (PDF File, 2 KB)", pdf, "Wed, 27 May 2026"), OLD_HKMA],
    )
    monitor.round(capsys)
    # silently re-uploaded; then a press release links it before the daily recheck comes round
    feeds.page(
        pdf, make_pdf([lines[0], "The annual licence fee is HK$2m."], created="20260602090000+08'00'"), PDF
    )
    feeds.page("/hkma/press/1/", hkma_release("HKMA on stablecoin fees", ["Stablecoin fees."], pdf=pdf))
    feeds.feed(
        "/hkma/rss_press-release.xml",
        [("HKMA on stablecoin fees", "/hkma/press/1/", "Thu, 28 May 2026"), OLD_HKMA],
    )
    monitor.round(capsys)
    time.sleep(1.1)
    monitor.round(capsys)
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM changes WHERE kind = 'changed'").fetchone()[0] == 1
