"""Telegram rendering: exact alert HTML, escaping, and splitting checked with the stub's own parser.

The stub's `parse_html` follows tdlib's rules and error texts, so "parses" here means Telegram
would accept the message, and `utf16_len` of its plain text is what Telegram measures.
"""

from __future__ import annotations

import html
import re
import time

import pytest

from monitor.models import Change, LoggedChange
from monitor.render import render_text
from monitor.telegram_render import alert_html, digest_html, plain_text, split_message, split_plain

try:
    from telegram_stub import HtmlParseError, parse_html, utf16_len
except ModuleNotFoundError:  # tests/ is a package
    from tests.telegram_stub import HtmlParseError, parse_html, utf16_len

SFC_LINK = (
    "https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/intermediaries/supervision/doc"
    "?refNo=25EC45&lang=EN"
)
ZH_TITLE = "證監會與金管局就向零售投資者分銷持牌穩定幣發出聯合通函"


def logged(change: Change, regulator: str = "SFC", id: int = 42) -> LoggedChange:
    return LoggedChange(
        id=id,
        regulator=regulator,
        detected_at="2025-07-30T10:20:05+00:00",
        fetched_at="2025-07-30T10:20:03+00:00",
        change=change,
    )


def sfc_circular() -> LoggedChange:
    return logged(
        Change(
            source_id="sfc-circulars",
            kind="new",
            title="Joint circular on distribution of licensed stablecoins to retail investors",
            item_key="25EC45",
            link=SFC_LINK,
            date="2025-07-30T09:05:00+00:00",
            topics=("stablecoin", "virtual-assets"),
            matches={"stablecoin": ("stablecoin",), "virtual-assets": ("virtual asset", "VA")},
        )
    )


def hkma_reserve_assets() -> LoggedChange:
    return logged(
        Change(
            source_id="hkma-consultations",
            kind="changed",
            title="Stablecoin issuers: reserve assets <1 year & >HK$25m paid-up capital",
            before="Stablecoin issuers: reserve assets & capital (PDF)",
            link="https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/2025/20250729e1.pdf",
            date="2025-07-29",
            topics=("stablecoin",),
            matches={"stablecoin": ("stablecoin",)},
        ),
        regulator="HKMA",
        id=43,
    )


def sfc_chinese() -> LoggedChange:
    return logged(
        Change(
            source_id="sfc-circulars-tc",
            kind="new",
            title=ZH_TITLE,
            link="https://apps.sfc.hk/edistributionWeb/gateway/TC/circular/doc?refNo=25EC45&lang=TC",
            date="2025-07-30",
            topics=("stablecoin",),
            matches={"stablecoin": ("穩定幣",)},
        ),
        id=44,
    )


def register_page(added: int = 2, removed: int = 1) -> LoggedChange:
    return logged(
        Change(
            source_id="hkma-stablecoin-register",
            kind="page",
            title="Register of licensed stablecoin issuers",
            link="https://www.hkma.gov.hk/eng/regulatory-resources/registers/register-of-licensed-stablecoin-issuers/",
            added=tuple(
                f"Example Stablecoin Issuer No.{n} Limited (AXQ{n:04d}) & Co <HK>" for n in range(added)
            ),
            removed=tuple(f"Withdrawn Issuer {n} Limited (BXR{n:04d})" for n in range(removed)),
            topics=("stablecoin", "virtual-assets"),
            matches={"stablecoin": ("stablecoin",)},
        ),
        regulator="HKMA",
        id=45,
    )


def hostile(link: str = "https://www.sfc.hk/x?a=\"><script>&b='1'") -> LoggedChange:
    return logged(
        Change(
            source_id="sfc-press",
            kind="new",
            title='<script>alert(1)</script> & "quotes"',
            link=link,
            date="<b>2025</b>",
            topics=("stablecoin",),
            matches={"stablecoin": ("<i>stablecoin</i>",)},
        ),
        regulator="SFC</b>",
        id=46,
    )


ALL = {
    "sfc-circular": sfc_circular,
    "hkma-angle-brackets": hkma_reserve_assets,
    "sfc-chinese": sfc_chinese,
    "register-page": register_page,
    "hostile": hostile,
}


def parts_plain(parts: list[str]) -> list[str]:
    """Each part parsed as Telegram would, its "(i/n) " prefix removed; checks limit and validity."""
    texts = []
    for index, part in enumerate(parts, 1):
        text, _ = parse_html(part)
        assert utf16_len(text) <= 4096
        prefix = f"({index}/{len(parts)}) "
        assert text.startswith(prefix)
        texts.append(text[len(prefix) :])
    return texts


# --------------------------------------------------------------------------- one alert


def test_alert_exact_html() -> None:
    assert alert_html(sfc_circular()) == (
        "<b>SFC</b> · stablecoin, virtual-assets\n"
        'NEW: <a href="https://apps.sfc.hk/edistributionWeb/gateway/EN/circular/intermediaries/'
        'supervision/doc?refNo=25EC45&amp;lang=EN">'
        "Joint circular on distribution of licensed stablecoins to retail investors</a>\n"
        "Date: 2025-07-30 17:05 HKT\n"
        "Matched: stablecoin (stablecoin); virtual-assets (virtual asset, VA)\n"
        "<i>sfc-circulars · change #42</i>"
    )
    _, entities = parse_html(alert_html(sfc_circular()))
    assert {"type": "text_link", "url": SFC_LINK, "offset": 38, "length": 74} in entities


def test_alert_delayed_says_when_detected() -> None:
    last = alert_html(sfc_circular(), delayed=True).splitlines()[-1]
    assert last == "<i>sfc-circulars · change #42 · Delayed: detected 2025-07-30 18:20 HKT</i>"


def test_changed_item_shows_was_and_escapes_angle_brackets() -> None:
    assert alert_html(hkma_reserve_assets()).splitlines()[1:4] == [
        'CHANGED: <a href="https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/'
        '2025/20250729e1.pdf">Stablecoin issuers: reserve assets &lt;1 year &amp; &gt;HK$25m paid-up capital</a>',
        "Was: Stablecoin issuers: reserve assets &amp; capital (PDF)",
        "Date: 2025-07-29",
    ]
    text, _ = parse_html(alert_html(hkma_reserve_assets()))
    assert "reserve assets <1 year & >HK$25m paid-up capital" in text


def test_hostile_title_and_href_are_escaped() -> None:
    rendered = alert_html(hostile())
    assert "<script>" not in rendered and "</b>\n" not in rendered
    assert rendered.splitlines()[1] == (
        'NEW: <a href="https://www.sfc.hk/x?a=&quot;&gt;&lt;script&gt;&amp;b=&#x27;1&#x27;">'
        '&lt;script&gt;alert(1)&lt;/script&gt; &amp; "quotes"</a>'
    )
    text, entities = parse_html(rendered)
    assert text.splitlines()[:4] == [
        "SFC</b> · stablecoin",
        'NEW: <script>alert(1)</script> & "quotes"',
        "Date: <b>2025</b>",
        "Matched: stablecoin (<i>stablecoin</i>)",
    ]
    links = [e for e in entities if e["type"] == "text_link"]
    assert links == [
        {"type": "text_link", "url": "https://www.sfc.hk/x?a=\"><script>&b='1'", "offset": 26, "length": 36}
    ]


@pytest.mark.parametrize("link", ["javascript:alert(1)", "", "/relative/path"])
def test_title_without_http_link_is_bold_not_linked(link: str) -> None:
    line = alert_html(hostile(link)).splitlines()[1]
    assert line == 'NEW: <b>&lt;script&gt;alert(1)&lt;/script&gt; &amp; "quotes"</b>'


@pytest.mark.parametrize("delayed", [False, True], ids=["on-time", "delayed"])
@pytest.mark.parametrize("make", ALL.values(), ids=ALL.keys())
def test_every_alert_parses_and_plain_text_is_what_telegram_shows(make, delayed: bool) -> None:
    rendered = alert_html(make(), delayed=delayed)
    text, _ = parse_html(rendered)
    assert text == plain_text(rendered)
    for line in rendered.splitlines():  # each line is valid on its own: safe to split anywhere
        parse_html(line)


def test_chinese_title_renders_and_counts_one_unit_per_character() -> None:
    rendered = alert_html(sfc_chinese())
    assert f">{ZH_TITLE}</a>" in rendered
    assert "Matched: stablecoin (穩定幣)" in rendered
    text, entities = parse_html(rendered)
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["length"] == len(ZH_TITLE) == utf16_len(ZH_TITLE) == 27
    assert text[link["offset"] : link["offset"] + link["length"]] == ZH_TITLE


def test_long_and_multiline_scraped_text_is_clipped_to_one_line() -> None:
    change = Change(source_id="s", kind="new", title="R&D " * 200 + "\nsecond line")
    line = alert_html(logged(change)).splitlines()[1]
    assert line.startswith("NEW: <b>R&amp;D R&amp;D") and line.endswith("…</b>")
    assert len(plain_text(line)) == len("NEW: ") + 300
    parse_html(line)


# --------------------------------------------------------------------------- page changes


def test_page_change_lists_added_and_removed_lines() -> None:
    assert alert_html(register_page()).splitlines() == [
        "<b>HKMA</b> · stablecoin, virtual-assets",
        'PAGE CHANGED: <a href="https://www.hkma.gov.hk/eng/regulatory-resources/registers/'
        'register-of-licensed-stablecoin-issuers/">Register of licensed stablecoin issuers</a>',
        "Matched: stablecoin (stablecoin)",
        "+ Example Stablecoin Issuer No.0 Limited (AXQ0000) &amp; Co &lt;HK&gt;",
        "+ Example Stablecoin Issuer No.1 Limited (AXQ0001) &amp; Co &lt;HK&gt;",
        "− Withdrawn Issuer 0 Limited (BXR0000)",
        "<i>hkma-stablecoin-register · change #45</i>",
    ]


def test_page_change_shows_a_limited_number_of_lines_by_default() -> None:
    lines = alert_html(register_page(added=50, removed=21)).splitlines()
    assert sum(line.startswith("+ Example") for line in lines) == 20
    assert "+ … 30 more lines (policy-monitor show 45)" in lines
    assert "− … 1 more line (policy-monitor show 45)" in lines


def test_page_change_with_2000_lines_splits_into_valid_numbered_parts() -> None:
    rendered = alert_html(register_page(added=2000, removed=3), max_lines=None)
    parts = split_message(rendered)
    assert len(parts) > 1
    texts = parts_plain(parts)
    shown = "\n".join(texts).splitlines()
    assert shown == plain_text(rendered).splitlines()  # every line, in order, none cut
    assert sum(line.startswith("+ Example") for line in shown) == 2000
    assert parts[1].startswith(f"(2/{len(parts)}) + Example Stablecoin Issuer No.")


def test_many_parts_reserve_room_for_two_digit_numbers() -> None:
    rendered = alert_html(register_page(added=60), max_lines=None)
    parts = split_message(rendered, limit=400)
    assert len(parts) >= 10
    for index, part in enumerate(parts, 1):
        text, _ = parse_html(part)
        assert utf16_len(text) <= 400 and text.startswith(f"({index}/{len(parts)}) ")


# --------------------------------------------------------------------------- splitting


def test_short_message_is_one_part_unchanged() -> None:
    rendered = alert_html(sfc_circular())
    assert split_message(rendered) == [rendered]
    assert split_message("  \n ") == []


def test_ten_thousand_character_line_with_ampersands_splits_safely() -> None:
    visible = 'R&D <sandbox> & "stablecoin" pilot; ' * 280  # 10,080 characters, 560 '&'
    line = f'<b>{html.escape(visible, quote=False)}</b> <a href="https://x.hk/?a=1&amp;b=2">link</a>'
    parts = split_message(f"<b>HKMA</b> · e-HKD\n{line}\n<i>end</i>")
    assert len(parts) == 4
    texts = parts_plain(parts)
    assert texts[1].startswith('R&D <sandbox> & "stablecoin" pilot; R&D')
    pieces = "\n".join(texts).splitlines()
    assert pieces[0] == "HKMA · e-HKD" and pieces[-1] == "end"
    assert "".join(pieces[1:-1]) == visible + " link"  # degraded to text, nothing lost or mangled
    for part in parts:
        assert not re.search(r"&[a-z]*$|&[a-z]*\n", part)  # no entity cut at a line end


def test_tag_spanning_lines_is_kept_whole() -> None:
    block = "<pre>" + "\n".join(f"row {n:02d}" for n in range(20)) + "</pre>"  # 139 visible
    message = "\n".join(["header " * 10, block, *("footer line " * 3 for _ in range(5))])
    parts = split_message(message, limit=200)
    assert len(parts) > 1
    assert sum(block in part for part in parts) == 1
    assert "\n".join(parts_plain(parts)).splitlines() == plain_text(message).splitlines()


def test_utf16_length_counts_emoji_twice_and_chinese_once() -> None:
    chinese = "穩定幣" * 1365  # 4,095 characters, 4,095 units: fits
    assert split_message(chinese) == [chinese]
    emoji = "📈" * 2100  # 2,100 characters but 4,200 units: too long
    parts = split_message(emoji)
    assert len(parts) == 2
    assert "".join(parts_plain(parts)) == emoji
    assert all(utf16_len(parse_html(part)[0]) <= 4096 for part in parts)
    assert split_plain("😀" * 2049) == [f"(1/2) {'😀' * 2045}", f"(2/2) {'😀' * 4}"]


def test_plain_text_resend_splits_and_keeps_every_line() -> None:
    rendered = alert_html(register_page(added=500, removed=500), max_lines=None)
    text = plain_text(rendered)
    assert "+ Example Stablecoin Issuer No.7 Limited (AXQ0007) & Co <HK>" in text
    with pytest.raises(HtmlParseError):
        parse_html(text)  # why it is resent without a parse mode
    parts = split_plain(text)
    assert len(parts) > 1
    assert all(utf16_len(part) <= 4096 for part in parts)
    joined = "\n".join(part.split(" ", 1)[1] for part in parts)
    assert joined.splitlines() == text.splitlines()


def test_plain_text_decodes_entities_like_telegram() -> None:
    source = "<b>a&amp;b</b> &lt;x&gt; &quot;q&quot; &#x27;s&#39; &ampx &nbsp; &#12345678;"
    assert plain_text(source) == parse_html(source)[0] == "a&b <x> \"q\" 's' &ampx &nbsp; &#12345678;"


# --------------------------------------------------------------------------- digest


def test_digest_of_eight_changes_links_each() -> None:
    makers = [*ALL.values(), sfc_circular, sfc_chinese, register_page]
    rendered = digest_html([make() for make in makers])
    assert rendered.count("<a href=") == 8
    text, entities = parse_html(rendered)
    assert text.startswith("8 new alerts\n\nSFC · stablecoin, virtual-assets\nNEW: Joint circular")
    assert sum(e["type"] == "text_link" for e in entities) == 8
    assert split_message(rendered) == [rendered]
    for line in rendered.splitlines():
        parse_html(line)


def test_digest_entry_layout() -> None:
    assert digest_html([sfc_circular(), hkma_reserve_assets()]) == (
        "<b>2 new alerts</b>\n"
        "\n"
        "<b>SFC</b> · stablecoin, virtual-assets\n"
        f'NEW: <a href="{html.escape(SFC_LINK)}">'
        "Joint circular on distribution of licensed stablecoins to retail investors</a>"
        " · 2025-07-30 17:05 HKT\n"
        "\n"
        "<b>HKMA</b> · stablecoin\n"
        'CHANGED: <a href="https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/'
        '2025/20250729e1.pdf">Stablecoin issuers: reserve assets &lt;1 year &amp; &gt;HK$25m paid-up capital</a>'
        " · 2025-07-29"
    )


# --------------------------------------------------------------------------- times


@pytest.fixture
def host_in_utc(monkeypatch):
    """A server set to UTC, as most containers are; Hong Kong is 8 hours ahead."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("date", ["2026-08-01 17:05", "2026-08-01T17:05:00", "2026-08-01T17:05:00+08:00"])
def test_a_time_without_a_zone_is_hong_kong_time(host_in_utc, date: str) -> None:
    change = Change(source_id="fstb-press-tc", kind="new", title=ZH_TITLE, date=date)
    assert "Date: 2026-08-01 17:05 HKT" in alert_html(logged(change)).splitlines()


def retitled_circular(was_date: str) -> LoggedChange:
    """A circular retitled and redated: diff keeps the old title and the date as the feed gave it."""
    return logged(
        Change(
            source_id="hkma-circulars",
            kind="changed",
            title="Circular on Stablecoin services (revised)",
            before=f"Circular on Stablecoin services ({was_date})",
            link="https://www.hkma.gov.hk/media/eng/doc/key-information/guidelines-and-circular/2026/20260730e1.pdf",
            date="2026-07-31T09:00:00+08:00",
            topics=("stablecoin",),
        ),
        regulator="HKMA",
    )


@pytest.mark.parametrize(
    ("was_date", "shown"),
    [
        ("2026-07-30T16:21:33+08:00", "2026-07-30 16:21 HKT"),
        ("2026-07-30T08:21:33+00:00", "2026-07-30 16:21 HKT"),
        ("2026-07-30 16:21", "2026-07-30 16:21 HKT"),
        ("2026-07-30", "2026-07-30"),
    ],
    ids=["hkt", "utc", "no-zone", "date-only"],
)
def test_was_line_shows_the_old_date_as_the_date_line_does(host_in_utc, was_date: str, shown: str) -> None:
    lines = alert_html(retitled_circular(was_date)).splitlines()
    assert lines[2:4] == [
        f"Was: Circular on Stablecoin services ({shown})",
        "Date: 2026-07-31 09:00 HKT",
    ]
    terminal = render_text(retitled_circular(was_date)).splitlines()
    assert terminal[2:4] == [
        f"Was:     Circular on Stablecoin services ({shown})",
        "Date:    2026-07-31 09:00 HKT",
    ]


# Real HKMA items (shared/fixtures/real/hkma): the BRDR ledger's 25 entries of 13 June 2025, one
# consultation on cryptoasset return templates, the kind of day a long digest is made of.
CONSULTATION = "Cryptoassets standard and other miscellaneous amendments: consultation on return templates"
TEMPLATE, NOTES, CIS = "Return template: MA(BS)", "Explanatory notes : MA(BS)", "CIs: MA(BS)"
CRYPTOASSET_BATCH = [
    f"Letter to DTCA: {CONSULTATION}",
    f"Letter to HKAB: {CONSULTATION}",
    *(
        f"{CONSULTATION} {what}"
        for what in (
            *(TEMPLATE + "1E Part 1", NOTES + "1E Part 1", TEMPLATE + "1Fa", TEMPLATE + "1Fb", NOTES + "1F"),
            *(
                TEMPLATE + "3 Part I",
                NOTES + "3 Part I",
                CIS + "3 Part II Cls",
                CIS + "3 Part II Cls - Annex",
            ),
            *(f"{kind}3 Part III{x}" for x in "abcf" for kind in (TEMPLATE, NOTES)),
            *(TEMPLATE + "3a Part I", NOTES + "3a Part I", TEMPLATE + "26 Part I", NOTES + "26 Part I"),
            *(CIS + "27 Cls", NOTES + "28"),
        )
    ),
]


def hkma_cryptoasset_batch() -> list[LoggedChange]:
    return [
        logged(
            Change(
                source_id="hkma-circulars",
                kind="new",
                title=title,
                link=f"https://brdr.hkma.gov.hk/eng/doc-ldg/current/20250613-{n}-EN",
                date="2025-06-13",
                topics=("virtual-assets",),
            ),
            regulator="HKMA",
            id=100 + n,
        )
        for n, title in enumerate(CRYPTOASSET_BATCH, 1)
    ]


def test_long_digest_splits_between_entries_never_under_a_header() -> None:
    batch = hkma_cryptoasset_batch()
    parts = split_message(digest_html(batch))
    assert len(batch) == 25 and len(parts) == 2
    first, second = parts_plain(parts)
    assert first.startswith("25 new alerts\n\nHKMA · virtual-assets\nNEW: Letter to DTCA: Cryptoassets")
    assert second.startswith("HKMA · virtual-assets\nNEW: Cryptoassets standard")
    for text in (first.split("\n\n", 1)[1], second):  # after the count: header, entry, blank line
        for entry in text.split("\n\n"):
            header, title = entry.split("\n")
            assert header == "HKMA · virtual-assets" and title.startswith("NEW: ")
    shown = [line for text in (first, second) for line in text.splitlines() if line.startswith("NEW: ")]
    assert shown == [f"NEW: {c.change.title} · 2025-06-13" for c in batch]  # each once, in order


def test_a_removed_item_says_what_removed_means() -> None:
    withdrawn = logged(Change(**{**sfc_circular().change.__dict__, "kind": "removed"}))
    lines = alert_html(withdrawn).splitlines()
    assert lines[1].startswith("REMOVED: ")
    assert "<i>no longer listed by the source: withdrawn, or moved (the link may still work)</i>" in lines
    assert (
        "Note:    no longer listed by the source: withdrawn, or moved (the link may still work)"
        in render_text(withdrawn).splitlines()
    )


def test_a_digest_of_a_flood_shows_fifty_entries_and_counts_the_rest() -> None:
    flood = [*hkma_cryptoasset_batch()] * 120  # 3,000 alerts at once: a listing gone wrong, or hostile
    parts = parts_plain(split_message(digest_html(flood)))
    assert len(parts) <= 4 and parts[0].startswith("3,000 new alerts\n\nHKMA · virtual-assets\nNEW: ")
    assert sum(text.count("\nNEW: ") for text in parts) == 50
    assert parts[-1].endswith("… and 2,950 more, in the change log (policy-monitor log)")


def test_a_flood_from_one_listing_does_not_hide_another_source_s_alert() -> None:
    flood = [*hkma_cryptoasset_batch()] * 120
    parts = parts_plain(split_message(digest_html([*flood, sfc_circular()])))
    shown = [line for text in parts for line in text.splitlines() if line.startswith("NEW: ")]
    assert len(shown) == 50 and shown[-1].startswith(
        "NEW: Joint circular on distribution of licensed stablecoins"
    )
    three_sources = digest_html([*flood, hkma_reserve_assets(), sfc_circular()])
    everything = "\n".join(parts_plain(split_message(three_sources)))
    assert "Stablecoin issuers: reserve assets <1 year" in everything and "Joint circular on" in everything
