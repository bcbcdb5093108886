"""What counts as 'the same' title, link and date: the real quirks of the SFC and HKMA feeds."""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.answers import ends_page
from monitor.charset import content_type_charset, decode
from monitor.normalize import (
    INVISIBLE,
    NUMBER_PUNCTUATION,
    SPACES,
    _normalize_parsed,
    clean_text,
    clean_title,
    fingerprint,
    join_link,
    normalize_link,
    parse_date,
)
from tests.conftest import ROOT

SFC_TC = json.loads((ROOT / "tests/fixtures/real/sfc_tc_news.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(
            "Granting of stablecoin issuer licences",
            "Granting of  stablecoin issuer licences",
            id="double-space",
        ),
        pytest.param("Use of A.I. in banking", "Use of AI in banking", id="hkma-ai-vs-a.i."),
        pytest.param("Circular (PDF File, 131.0 KB)", "Circular (PDF File, 131.4 KB)", id="pdf-size"),
        pytest.param("證監會：︁公布", "證監會：公布", id="variation-selector-u+fe01"),
        pytest.param("證監會\u3000公布\r\n", "證監會 公布", id="ideographic-space-crlf"),
    ],
)
def test_cosmetic_variants_are_the_same_title(a, b):
    assert fingerprint(a) == fingerprint(b)


def test_a_changed_word_is_a_different_title():
    assert fingerprint("SFC consults on stablecoin rules") != fingerprint("SFC concludes on stablecoin rules")


def test_real_sfc_chinese_titles_clean_up():
    titles = {item["refNo"]: item["title"] for item in SFC_TC["items"]}
    for ref, title in titles.items():
        cleaned = clean_title(title)
        assert cleaned == cleaned.strip() and "\r" not in cleaned and "  " not in cleaned, ref
        assert "\ufe01" not in cleaned, ref


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "https://www.hkma.gov.hk/media/eng/doc/a.pdf?rev=abc123",
            "https://www.hkma.gov.hk/media/eng/doc/a.pdf",
        ),
        ("HTTPS://WWW.HKMA.GOV.HK:443/eng/x/#top", "https://www.hkma.gov.hk/eng/x/"),
        ("https://apps.sfc.hk/doc?refNo=26PR1&utm_source=rss", "https://apps.sfc.hk/doc?refNo=26PR1"),
        # session ids, new for every visitor: as a path parameter and as a query parameter
        (
            "https://www.fstb.gov.hk/tc/press/pr1.htm;jsessionid=A1B2C3?lang=tc",
            "https://www.fstb.gov.hk/tc/press/pr1.htm?lang=tc",
        ),
        ("https://www.fstb.gov.hk/press.php?id=7&PHPSESSID=9f8e7d", "https://www.fstb.gov.hk/press.php?id=7"),
    ],
)
def test_links_normalise(a, b):
    assert normalize_link(a) == normalize_link(b)


def test_reference_numbers_in_links_are_kept():
    assert normalize_link("https://apps.sfc.hk/doc?refNo=26PR1") != normalize_link(
        "https://apps.sfc.hk/doc?refNo=26PR2"
    )


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026年7月30日", "2026-07-30"),
        ("30 Jul 2026", "2026-07-30"),
        ("30/07/2026", "2026-07-30"),
        ("soon", "soon"),
        # a cell whose wording changes with the template: the date it holds does not
        ("Date: 30 Jul 2026", "2026-07-30"),
        ("Thu, 30 Jul 2026", "2026-07-30"),
        ("30-Jul-2026", "2026-07-30"),
        ("Issue date: July 30, 2026", "2026-07-30"),
        ("發布日期：2026-07-30", "2026-07-30"),
        ("Updated 30.07.2026 (PDF)", "2026-07-30"),
        ("31 Feb 2026", "31 Feb 2026"),  # no such day: kept as written
        ("Updated 5 Mar 2026 (first issued 2025-01-02)", "2026-03-05"),  # the first date written
        ("Circular 12 decisions 2026", "Circular 12 decisions 2026"),  # "dec" of a word is no month
        ("Sept. 3, 2026", "2026-09-03"),
        ("2026/07/29", "2026-07-29"),  # the forms a template change may switch a listing to
        ("2026.07.29", "2026-07-29"),
        ("29-07-2026", "2026-07-29"),
        ("29-Jul-26", "2026-07-29"),
        ("2026/7/9 10:00", "2026-07-09"),
        ("16:21 July 30, 2026", "2026-07-30"),  # not 21 July 2030
        ("Updated 2 Mar 26, 2026", "2026-03-26"),
        ("29 Jul 26 1430", "2026-07-29"),  # a time after it, not a year
    ],
)
def test_listing_dates(text, iso):
    assert parse_date(text) == iso


@pytest.mark.parametrize(
    ("body", "header", "encoding"),
    [
        pytest.param("穩定幣".encode("big5hkscs"), "utf-8", "big5hkscs", id="big5-labelled-utf8"),
        pytest.param("穩定幣".encode(), "big5", "utf-8", id="utf8-labelled-big5"),
        pytest.param(b'<meta charset="big5">' + "穩定幣".encode("big5"), "", "big5hkscs", id="meta-big5"),
        pytest.param("\ufeff穩定幣".encode(), "", "utf-8-sig", id="bom"),
        pytest.param(  # a server's default label: the page's own declaration is believed
            b'<meta charset="big5">' + "穩定幣".encode("big5"),
            "iso-8859-1",
            "big5hkscs",
            id="meta-over-latin1",
        ),
        pytest.param(  # and a stray byte: read as Big5 with one character lost, not as ISO-8859-1
            b'<meta charset="big5">' + "穩定幣".encode("big5") * 50 + b"\x81\x20",
            "iso-8859-1",
            "big5hkscs, invalid bytes replaced",
            id="meta-over-latin1-with-a-stray-byte",
        ),
        pytest.param(
            b'<?xml version="1.0" encoding="big5"?><rss>' + "穩定幣".encode("big5"),
            "windows-1252",
            "big5hkscs",
            id="xml-over-cp1252",
        ),
    ],
)
def test_charset_detection(body, header, encoding):
    text, used = decode(body, header)
    assert used == encoding
    assert "穩定幣" in text


def test_a_windows_1252_label_is_right_over_a_template_s_utf8_meta():
    page = '<meta charset="utf-8">The SFC’s circular “on stablecoins” – régime'
    assert decode(page.encode("cp1252"), "windows-1252") == (page, "cp1252")


# The fast paths of link handling must give what the general parse gives, for any link.
URL_PART = st.one_of(
    st.text(alphabet="aZ09-._~/?#;:@%[] \u00e9\u9999", max_size=12),
    st.text(alphabet="aZ09-._/ \u9999", max_size=12).map(lambda path: "/" + path),  # the fast paths
)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "ftp"]),
    host=st.sampled_from(
        [
            "www.sfc.hk",
            "WWW.HKMA.gov.hk",
            "127.0.0.1",
            "h:8080",
            "h:80",
            "h:443",
            "h:0",
            "h:08",
            "h:",
            "h:99999",
            "u@h",
            "[::1]",
            "",
            "é.hk",
        ]
    ),
    rest=URL_PART,
)
def test_normalize_link_fast_path_agrees_with_the_full_parse(scheme, host, rest):
    url = clean_text(f"{scheme}://{host}{rest}")
    try:
        expected = _normalize_parsed(url)
    except ValueError:
        return  # not a URL the full parse accepts; the fast path never takes such a host
    assert normalize_link(url) == expected


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(
        ["https://www.sfc.hk/en/News/list?page=2", "http://127.0.0.1:8000/a/b/", "https://h"]
    ),
    href=URL_PART,
)
def test_join_link_agrees_with_urljoin(base, href):
    href = clean_text(href)
    assert _outcome(join_link, base, href) == _outcome(urljoin, base, href)


def _outcome(join, base, href):
    try:
        return join(base, href)
    except ValueError as exc:  # e.g. "//[": an invalid IPv6 host, raised by both
        return repr(exc)


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("aZ 9.|\t\n\u3000\u00a0\u200b\ufe01\x07證"), max_size=10))
def test_clean_text_fast_path_agrees_with_the_full_clean(text):
    assert clean_text(text) == SPACES.sub(" ", INVISIBLE.sub("", text)).strip()


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=12))
def test_a_fingerprint_keeps_exactly_the_letters_digits_and_decimal_points(text):
    folded = NUMBER_PUNCTUATION.sub("·", unicodedata.normalize("NFKC", clean_title(text)).casefold())
    assert fingerprint(text) == "".join(ch for ch in folded if ch.isalnum() or ch in "·%")


@pytest.mark.parametrize(
    "header, charset",
    [
        ("text/html; charset=Big5", "big5"),
        ('text/html;charset="UTF-8"', "utf-8"),
        ("application/rss+xml; Charset = big5-hkscs", "big5-hkscs"),
        ("text/html", ""),
        ("", ""),
    ],
)
def test_the_charset_a_content_type_header_names(header, charset):
    assert content_type_charset(header) == charset


@pytest.mark.parametrize(
    ("body", "whole"),
    [
        pytest.param(
            b"<html><body><p>x</p></body></html>" + b"<style>a{}</style>" * 600,
            True,
            id="styles-after-the-end",
        ),
        pytest.param(
            b"<html><!-- <script old --><body><p>x</p></body></html>", True, id="script-tag-in-a-comment"
        ),
        pytest.param(
            b'<html><script>w("</body></html>")</script><body><tr>cut', False, id="end-written-by-a-script"
        ),
        pytest.param(b"<html><body><tr><td>cut mid-", False, id="cut"),
        pytest.param(b"<html><head><!--></head><body><p>x</p></body></html>", True, id="an-empty-comment"),
        pytest.param(
            b"<html><body><style-box>x</style-box><p>y</p></body></html>", True, id="a-custom-element"
        ),
    ],
)
def test_whether_a_page_came_whole(body, whole):
    assert ends_page(body) is whole
