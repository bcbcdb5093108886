"""Extraction: realistic regulator pages in, the items or text a user would expect out."""

from __future__ import annotations

import re
from dataclasses import replace

import lxml.html
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml.cssselect import CSSSelector

from monitor.charset import decode
from monitor.config import load_config
from monitor.errors import ExtractError, LayoutChanged
from monitor.extract import extract
from monitor.extract.dom import element_text, parse_html, parse_page, select, text_lines
from monitor.models import Page
from monitor.normalize import clean_text
from tests.conftest import (
    FSTB_LISTING,
    REGISTER,
    ROOT,
    ROUND1,
    ROUND2,
    SFC_PRESS,
    TEST_SETTINGS,
    TOPICS,
    rss_source,
)


def source_for(tmp_path, text: str):
    path = tmp_path / "sources.toml"
    path.write_text(TEST_SETTINGS + TOPICS + text.replace("{base}", "https://example.org"), encoding="utf-8")
    return load_config(path).sources[0]


def page_of(folder, path: str, content_type: str = "") -> Page:
    body = (folder / path).read_bytes()
    text, encoding = decode(body, "")
    headers = {"content-type": content_type} if content_type else {}
    url = f"https://example.org/{path}"
    return Page("s", url, url, 200, headers, body, text, encoding, "2026-11-25T01:00:00+00:00", 5, "sha")


SFC_EN = ("sfc/en/rss/press-releases.xml", SFC_PRESS)
HKMA_CIRCULARS = (
    "hkma/eng/rss/circulars.xml",
    rss_source("hkma-circulars-en", "/hkma/eng/rss/circulars.xml"),
)
HKMA_PRESS = (
    "hkma/eng/rss/press-release.xml",
    rss_source("hkma-press-en", "/hkma/eng/rss/press-release.xml"),
)
FSTB = ("fstb/tc/press-releases.htm", FSTB_LISTING)

EXPECTED_FIRST_ITEMS = [
    pytest.param(
        *SFC_EN,
        {
            "key": "id:26PR121",
            "title": "Market Misconduct Tribunal finds Sir Dickson Poon culpable of insider dealing ahead of disclosure of HK$1.15 billion corporate windfall",
            "date": "2026-07-31T18:39:27+08:00",
        },
        6,
        id="sfc-rss-guid-is-the-reference-number",
    ),
    pytest.param(
        *HKMA_PRESS,
        {
            "key": "link:https://www.hkma.gov.hk/eng/news-and-media/press-releases/2026/04/20260414-5/",
            "title": "Scam alert related to banks",
            "date": "2026-04-14",
        },
        8,
        id="hkma-rss-no-guid-date-only",
    ),
    pytest.param(
        *FSTB,
        {
            "title": "《2026年保險業（修訂）條例草案》刊憲",
            "date": "2026-07-30",
            "link": "https://example.org/tc/press/2026/pr20260730.htm",
        },
        6,
        id="fstb-big5-listing",
    ),
]


def retext(page: Page, text: str) -> Page:
    """The page as if the server had sent `text` (its body and its text agree, as fetch makes them)."""
    return replace(page, text=text, body=text.encode("utf-8"), encoding="utf-8")


@pytest.mark.parametrize(("path", "config", "expected", "count"), EXPECTED_FIRST_ITEMS)
def test_listing_items(tmp_path, path, config, expected, count):
    snapshot = extract(source_for(tmp_path, config), page_of(ROUND1, path))
    assert len(snapshot.items) == count
    first = snapshot.items[0]
    for field, value in expected.items():
        assert getattr(first, field) == value


def test_hkma_pdf_size_suffix_is_not_part_of_the_title(tmp_path):
    snapshot = extract(source_for(tmp_path, HKMA_CIRCULARS[1]), page_of(ROUND1, HKMA_CIRCULARS[0]))
    titles = [item.title for item in snapshot.items]
    assert any("Staking" in t for t in titles)
    assert not any(re.search(r"PDF File", t) for t in titles)


def test_big5_listing_decodes_as_traditional_chinese():
    page = page_of(ROUND1, FSTB[0])
    assert page.encoding == "big5hkscs"
    assert "財經事務及庫務局" in page.text


def test_register_page_text_keeps_table_rows_and_drops_noise(tmp_path):
    snapshot = extract(source_for(tmp_path, REGISTER), page_of(ROUND1, "hkma/eng/stablecoin-register.html"))
    lines = snapshot.text.splitlines()
    assert snapshot.title == "Register of Licensed Stablecoin Issuers - Hong Kong Monetary Authority"
    assert any(line.count(" | ") >= 3 and "SC0001" in line for line in lines)  # one line per licensee
    assert not any(line.startswith("Last revision date") for line in lines)
    assert not any("csrf" in line.lower() or "Page generated" in line for line in lines)


def test_noise_only_differences_give_the_same_snapshot(tmp_path):
    """A fresh CSRF token, revision date and banner on every request must not look like a change."""
    source = source_for(tmp_path, REGISTER)
    page = page_of(ROUND1, "hkma/eng/stablecoin-register.html")
    noisy_text = re.sub(r'content="[0-9a-f]{64}"', 'content="' + "0" * 64 + '"', page.text)
    noisy_text = noisy_text.replace('<div class="banner">', '<div class="banner">Another rotating banner ')
    noisy = retext(page, noisy_text)
    assert noisy_text != page.text
    assert extract(source, noisy).hash == extract(source, page).hash


def test_round_two_register_differs_only_by_the_new_licensee(tmp_path):
    source = source_for(tmp_path, REGISTER)
    old = extract(source, page_of(ROUND1, "hkma/eng/stablecoin-register.html")).text.splitlines()
    new = extract(source, page_of(ROUND2, "hkma/eng/stablecoin-register.html")).text.splitlines()
    assert [line for line in new if line not in old] == [
        "Pearl Delta Bank Stablecoin (Hong Kong) Limited | SC0003 | 31 July 2026 | 18/F, Pearl Delta Bank Building, 88 Des Voeux Road Central, Central, Hong Kong"
    ]
    assert [line for line in old if line not in new] == []


def test_listing_whose_items_vanish_is_a_layout_change(tmp_path):
    source = source_for(tmp_path, FSTB_LISTING)
    page = page_of(ROUND1, FSTB[0])
    redesigned = retext(page, page.text.replace('class="press-item"', 'class="news-row"'))
    with pytest.raises(
        LayoutChanged, match=re.escape("items selector 'table.press-list tr.press-item' matched nothing")
    ):
        extract(source, redesigned)


def test_page_without_its_region_is_a_layout_change(tmp_path):
    source = source_for(tmp_path, REGISTER)
    page = page_of(ROUND1, "hkma/eng/stablecoin-register.html")
    with pytest.raises(LayoutChanged, match="region 'main#content' not found"):
        extract(source, retext(page, page.text.replace('id="content"', 'id="main"')))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html><body>Maintenance</body></html>", id="html-instead-of-feed"),
        pytest.param((ROUND1 / SFC_EN[0]).read_bytes()[:1500], id="truncated-feed"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_broken_feed_is_an_error_not_an_empty_listing(tmp_path, body):
    source = source_for(tmp_path, SFC_PRESS)
    page = replace(page_of(ROUND1, SFC_EN[0]), body=body, text=body.decode("utf-8", "replace"))
    with pytest.raises(ExtractError):
        extract(source, page)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        pytest.param("Sun, 06 Dec 2026 20:30:00", "2026-12-06", id="rfc822-without-a-zone"),
        pytest.param("Sun, 06 Dec 2026 15:30:00 GMT", "2026-12-06T23:30:00+08:00", id="gmt"),
        pytest.param("Sun, 06 Dec 2026 23:30:00 +0800", "2026-12-06T23:30:00+08:00", id="with-its-offset"),
    ],
)
def test_a_feed_date_without_a_zone_keeps_its_day(tmp_path, written, read):
    """Against RSS's rules, but seen: dropped, the date vanished from the alert and the log."""
    page = page_of(ROUND1, SFC_EN[0])
    dated = re.sub(r"<pubDate>[^<]*</pubDate>", f"<pubDate>{written}</pubDate>", page.text, count=1)
    assert extract(source_for(tmp_path, SFC_PRESS), retext(page, dated)).items[0].date == read


def test_broken_html_still_yields_its_items(tmp_path):
    source = source_for(tmp_path, FSTB_LISTING)
    page = page_of(ROUND1, FSTB[0])
    broken = page.text.replace("</td>", "").replace("</tr>", "").replace("</table>", "")
    assert len(extract(source, retext(page, broken)).items) == 6


def test_title_filters_keep_a_firehose_to_what_matters(tmp_path):
    shipped = load_config(ROOT / "sources.toml").source("gov-press-en")
    unfiltered = extract(
        source_for(tmp_path, rss_source("gov", "/gia/rss/general_en.xml")),
        page_of(ROUND2, "gia/rss/general_en.xml"),
    )
    kept = extract(shipped, page_of(ROUND2, "gia/rss/general_en.xml"))
    assert len(unfiltered.items) == 10
    assert [i.title for i in kept.items] == [
        "Government welcomes passage of Stablecoins (Amendment) Bill 2025"
    ]


def test_exclude_titles_drops_items(tmp_path):
    source = source_for(
        tmp_path, SFC_PRESS + "exclude_titles = ['Market Misconduct', 'restriction notice']\n"
    )
    titles = [i.title for i in extract(source, page_of(ROUND1, SFC_EN[0])).items]
    assert len(titles) == 4 and not any("Market Misconduct" in t for t in titles)


CLASS_NAMES = st.sampled_from(["title", "date", "Title", "title-x", "x_1"])
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\r", "\xa0", "\u3000", "\f"])


@st.composite
def listing_markup(draw, depth=0):
    """A small tree of the elements a listing item holds, with class attributes spelled many ways."""
    tag = draw(st.sampled_from(["a", "span", "div", "li", "td"]))
    names = draw(st.lists(CLASS_NAMES, max_size=3))
    spaces = [draw(SPACES) for _ in range(len(names) + 1)]
    value = "".join(space + name for space, name in zip(spaces, [*names, ""], strict=True))
    attribute = f' class="{value}"' if draw(st.booleans()) else ""
    children = draw(st.lists(listing_markup(depth + 1), max_size=0 if depth > 2 else 3))
    comment = draw(st.sampled_from(["", "<!-- a.title -->"]))
    return f"<{tag}{attribute}>{comment}{''.join(children)}x</{tag}>"


@settings(max_examples=300, deadline=None)
@given(
    markup=listing_markup(),
    css=st.sampled_from(["a", "span", "td", ".title", ".title.date", "a.title", "span.date", "div.Title",
                         "a.title-x", ".x_1", "li", "A.title", "a .title", "li > a", "*", "a, span"]),
)  # fmt: skip
def test_a_simple_selector_finds_what_cssselect_finds(markup, css):
    root = etree.HTML(f"<html><body>{markup}</body></html>").find(".//body")[0]
    assert select(root, css) == CSSSelector(css)(root)


@pytest.mark.parametrize(
    "markup",
    [
        '<a class="title" href="/x">  SFC reminds\n  investors |  </a>',
        "<td>| 證監會\u3000就虛擬資產 |</td>",
        "<span class='date'>\u200b31 Jul 2026\u00a0</span>",
        "<p></p>",
        "<script>var generated = 1;</script>",
        "<div>Stablecoin <b>issuers</b> register</div>",  # not a leaf: the general walk
    ],
    ids=["link", "cell-with-pipes", "invisible-and-nbsp", "empty", "script", "nested"],
)
def test_a_leafs_text_is_what_the_general_walk_gives(markup):
    element = lxml.html.fragment_fromstring(markup)
    assert element_text(element) == clean_text(" ".join(text_lines(element)))


@pytest.mark.parametrize(
    "body",
    [
        "<html><head><title>證監會</title></head><body><p>穩定幣發行人</p></body></html>".encode(),
        b'  <?xml version="1.0" encoding="utf-8"?><html><body><p>e-HKD</p></body></html>',
        "<html><body><p>虛擬資產</p></body></html>".encode("big5"),
        "<p>可能".encode() + "穩".encode()[:2] + b"</p>",  # a character cut: no encoding fits
        "\u00a0<?xml version='1.0'?><html><body><p>e-HKD</p></body></html>".encode(),
        "\u3000".encode(),
    ],
    ids=["utf-8", "xml-declaration", "big5", "cut-character", "nbsp-then-declaration", "only-white-space"],
)
def test_a_page_parses_from_its_bytes_as_from_its_text(body):
    text, encoding = decode(body)
    page = Page(
        source_id="s", url="http://x/", final_url="http://x/", status=200, headers={}, body=body,
        text=text, encoding=encoding, fetched_at="", duration_ms=0, sha256="", stable_sha256="",
    )  # fmt: skip
    assert _parsed(parse_page, page) == _parsed(parse_html, text)


def _parsed(parse, *args):
    try:
        return etree.tostring(parse(*args))
    except ExtractError as exc:
        return str(exc)
