"""Diffing snapshots: new, changed and removed items; roll-off is silent; pages give line diffs."""

from __future__ import annotations

from monitor.diff import diff
from monitor.extract import snapshot_hash
from monitor.listing_moves import matched_by_title, overflowed, without_history
from monitor.models import Item, Snapshot, Source
from monitor.normalize import fingerprint

FEED = Source("hkma-press-en", "HKMA", "rss", "https://example.org/feed", ("stablecoin",), 900)


def items(*rows: tuple[str, str, str]) -> Snapshot:
    snapshot = Snapshot(
        "items", tuple(Item(f"id:{k}", title, f"https://x/{k}", date) for k, title, date in rows)
    )
    return Snapshot("items", snapshot.items, hash=snapshot_hash(snapshot))


def text(body: str, title: str = "Register") -> Snapshot:
    snapshot = Snapshot("text", text=body, title=title)
    return Snapshot("text", text=body, title=title, hash=snapshot_hash(snapshot))


OLD = items(("3", "Third", "2026-04-03"), ("2", "Second", "2026-04-02"), ("1", "First", "2026-04-01"))


def kinds(changes):
    return [(c.kind, c.item_key) for c in changes]


def test_first_snapshot_is_a_silent_baseline():
    assert diff(FEED, None, OLD) == []


def test_identical_snapshot_has_no_changes():
    assert (
        diff(
            FEED,
            OLD,
            items(("3", "Third", "2026-04-03"), ("2", "Second", "2026-04-02"), ("1", "First", "2026-04-01")),
        )
        == []
    )


def test_reordering_is_not_a_change():
    reordered = items(
        ("1", "First", "2026-04-01"), ("3", "Third", "2026-04-03"), ("2", "Second", "2026-04-02")
    )
    assert diff(FEED, OLD, reordered) == []


def test_new_item_and_roll_off_of_the_oldest():
    new = items(("4", "Fourth", "2026-04-04"), ("3", "Third", "2026-04-03"), ("2", "Second", "2026-04-02"))
    assert kinds(diff(FEED, OLD, new)) == [("new", "id:4")]


def test_item_withdrawn_from_the_middle_is_removed():
    new = items(("3", "Third", "2026-04-03"), ("1", "First", "2026-04-01"))
    changes = diff(FEED, OLD, new)
    assert kinds(changes) == [("removed", "id:2")]
    assert changes[0].title == "Second"


def test_retitled_item_is_changed_with_its_old_title():
    new = items(
        ("3", "Third (revised)", "2026-04-03"), ("2", "Second", "2026-04-02"), ("1", "First", "2026-04-01")
    )
    changes = diff(FEED, OLD, new)
    assert kinds(changes) == [("changed", "id:3")]
    assert changes[0].before == "Third (2026-04-03)"


def test_cosmetic_retitle_is_not_a_change():
    new = items(("3", "Third ", "2026-04-03"), ("2", "SECOND", "2026-04-02"), ("1", "First", "2026-04-01"))
    assert diff(FEED, OLD, new) == []


def test_item_that_comes_back_after_rolling_off_is_not_new():
    shrunk = items(("3", "Third", "2026-04-03"))
    assert diff(FEED, OLD, shrunk) == []  # 1 and 2 rolled off the end
    assert diff(FEED, shrunk, OLD, known_keys={"id:1", "id:2", "id:3"}) == []


def test_nothing_in_common_is_not_a_flood_of_removals():
    assert kinds(diff(FEED, OLD, items(("9", "Other", "2026-04-09")))) == [("new", "id:9")]


def test_page_change_lists_added_and_removed_lines():
    register = Source("hkma-register", "HKMA", "page", "https://example.org/r", ("stablecoin",), 900)
    old = text("Licensees\nAlpha Ltd | SC0001\nBeta Ltd | SC0002")
    new = text("Licensees\nAlpha Ltd | SC0001\nGamma Ltd | SC0003")
    (change,) = diff(register, old, new)
    assert change.kind == "page"
    assert change.added == ("Gamma Ltd | SC0003",)
    assert change.removed == ("Beta Ltd | SC0002",)
    assert "-Beta Ltd | SC0002" in change.diff and "+Gamma Ltd | SC0003" in change.diff
    assert change.link == "https://example.org/r"


REGISTER_PAGE = Source("sfc-vatp-register", "SFC", "page", "https://example.org/r", ("virtual-assets",), 900)
LICENSEES = "Licensed platforms\nOSL Digital Securities Limited | BTU612\nHash Blockchain Limited | BOB901\nAccumulus GBA Technology | BPI402"


def test_a_register_sorted_another_way_or_retitled_by_its_template_is_no_change():
    resorted = "Licensed platforms\nAccumulus GBA Technology | BPI402\nHash Blockchain Limited | BOB901\nOSL Digital Securities Limited | BTU612"
    assert diff(REGISTER_PAGE, text(LICENSEES), text(resorted)) == []
    old, new = text(LICENSEES, "Register of VATPs - SFC"), text(LICENSEES, "Register of VATPs | SFC")
    assert diff(REGISTER_PAGE, old, new) == []


def test_a_line_that_moves_past_a_heading_is_a_change():
    """Not a table's rows re-sorted: a licensee moved from "Licensed" to "Suspended"."""
    old = text("Licensed\nAlpha Ltd\nBeta Ltd\nSuspended licences\nGamma Ltd")
    new = text("Licensed\nAlpha Ltd\nSuspended licences\nBeta Ltd\nGamma Ltd")
    assert len(diff(REGISTER_PAGE, old, new)) == 1
    rows = text("Licensed\nAlpha Ltd | A1\nBeta Ltd | B2\nSuspended licences\nGamma Ltd | G3")
    moved = text("Licensed\nAlpha Ltd | A1\nSuspended licences\nBeta Ltd | B2\nGamma Ltd | G3")
    assert len(diff(REGISTER_PAGE, rows, moved)) == 1


def test_a_register_that_gains_a_platform_while_re_sorted_or_is_retitled_is_a_change():
    resorted = "Licensed platforms\nAccumulus GBA Technology | BPI402\nHash Blockchain Limited | BOB901\nOSL Digital Securities Limited | BTU612"
    (change,) = diff(REGISTER_PAGE, text(LICENSEES), text(resorted + "\nHKVAX VA Trading Limited | BPR560"))
    assert "HKVAX VA Trading Limited | BPR560" in change.added
    (change,) = diff(REGISTER_PAGE, text(LICENSEES, "Register"), text(LICENSEES, "Register (suspended)"))
    assert change.diff == "-title: Register\n+title: Register (suspended)"


def test_a_changed_amount_is_a_changed_title():
    old = items(("1", "SFC fines broker HK$1.5 million", "2026-04-01"), ("0", "Older", "2026-03-01"))
    new = items(("1", "SFC fines broker HK$15 million", "2026-04-01"), ("0", "Older", "2026-03-01"))
    assert kinds(diff(FEED, old, new)) == [("changed", "id:1")]


def test_withdrawal_on_the_same_day_as_the_oldest_listed_item_is_reported():
    old = items(("a", "A", "2026-04-02"), ("b", "B", "2026-04-01"), ("c", "C", "2026-04-01"))
    new = items(("a", "A", "2026-04-02"), ("c", "C", "2026-04-01"))
    assert kinds(diff(FEED, old, new)) == [("removed", "id:b")]


def test_an_item_whose_key_switches_to_link_and_title_is_not_new():
    """HKMA's LegCo feed: a second item with the same link turns both keys into link + title."""
    link = "https://www.hkma.gov.hk/eng/data-publications-and-research/legislative-council-issues"
    old = Snapshot("items", (Item(f"link:{link}", "Stablecoins Bill", link, "2026-04-01"),), hash="a")
    new = Snapshot(
        "items",
        (
            Item(f"link:{link}|legco2", "LegCo question on tokenised deposits", link, "2026-04-02"),
            Item(f"link:{link}|stablecoinsbill", "Stablecoins Bill", link, "2026-04-01"),
        ),
        hash="b",
    )
    changes = diff(FEED, old, new, known_keys={f"link:{link}"})
    assert [c.title for c in changes] == ["LegCo question on tokenised deposits"]


def test_after_a_link_format_change_only_new_titles_are_new_even_when_titles_repeat():
    monthly = "Exchange Fund Abridged Balance Sheet and Currency Board Account"
    old = items(
        ("p3", monthly, "2026-07-31"), ("p2", "Press release on stablecoin", "2026-07-20"),
        ("p1", "Press release on stablecoin", "2026-07-10"), ("p0", monthly, "2026-06-30"),
    )  # fmt: skip
    relinked = items(  # every key new: the site's new link format; one release published meanwhile
        ("n4", monthly, "2026-08-31"), ("n3", monthly, "2026-07-31"),
        ("n2", "Press release on stablecoin", "2026-07-20"), ("n1", "Press release on stablecoin", "2026-07-10"),
        ("n0", monthly, "2026-06-30"),
    )  # fmt: skip
    by_title = matched_by_title(old, relinked)
    assert by_title is not None
    assert [(c.kind, c.item_key, c.date) for c in diff(FEED, by_title, relinked)] == [
        ("new", "id:n4", "2026-08-31")
    ]


def test_a_listing_of_mostly_new_titles_is_not_matched_by_title():
    relinked = items(
        ("n3", "Third", "2026-04-03"), ("n9", "Ninth", "2026-04-09"), ("n8", "Eighth", "2026-04-08")
    )
    assert matched_by_title(OLD, relinked) is None  # 1 of 3 listed before: a different listing


def grown(old: Snapshot, *added: tuple[str, str, str]):
    """The changes of `old` with `added` listed on top of it, and what is left of them as news."""
    changes = diff(FEED, old, items(*added, *((i.key[3:], i.title, i.date) for i in old.items)))
    return kinds(changes), without_history(old, changes)


def test_a_listing_that_grew_its_page_shows_its_history_which_is_not_news():
    old = items(*((f"o{d}", f"Notice of {d} July", f"2026-07-{d:02d}") for d in range(30, 20, -1)))
    added = [
        ("n31", "Licence", "2026-07-31"),
        *((f"h{n}", f"Older {n}", f"2026-07-{1 + n % 19:02d}") for n in range(29)),
    ]
    _, (news, history) = grown(old, *added)
    assert kinds(news) == [("new", "id:n31")] and history == 29


def test_a_few_new_items_are_all_news_however_they_are_dated():
    old = items(("o20", "Notice of 20 July", "2026-07-20"))
    found, (news, history) = grown(
        old, ("n21", "Licence", "2026-07-21"), ("n19", "Circular of 19 July", "2026-07-19")
    )
    assert kinds(news) == found == [("new", "id:n21"), ("new", "id:n19")] and history == 0


def test_history_is_told_by_day_dates_only():
    """ "Aug 2026" sorts before "Jul 2026" as text: such dates tell nothing about which is older."""
    old = items(("o1", "June report", "Jun 2026"), ("o2", "July report", "Jul 2026"))
    added = [(f"n{n}", f"Report {n}", "Aug 2026") for n in range(12)]
    found, (news, history) = grown(old, *added)
    assert kinds(news) == found and len(found) == 12 and history == 0


def test_an_older_item_sliding_in_below_a_listing_of_fixed_size_is_not_news():
    old = items(("o30", "Notice of 30 July", "2026-07-30"), ("o29", "Withdrawn", "2026-07-29"),
                ("o28", "Notice of 28 July", "2026-07-28"))  # fmt: skip
    slid = items(("o30", "Notice of 30 July", "2026-07-30"), ("o28", "Notice of 28 July", "2026-07-28"),
                 ("o27", "Notice of 27 July", "2026-07-27"))  # fmt: skip
    news, history = without_history(old, diff(FEED, old, slid), slid)
    assert kinds(news) == [("removed", "id:o29")] and history == 1
    on_top = items(("o27", "Notice of 27 July", "2026-07-27"), ("o30", "Notice of 30 July", "2026-07-30"),
                   ("o28", "Notice of 28 July", "2026-07-28"))  # fmt: skip
    news, history = without_history(old, diff(FEED, old, on_top), on_top)  # published now, dated back
    assert ("new", "id:o27") in kinds(news) and history == 0
    in_place_of_the_last = items(("o30", "Notice of 30 July", "2026-07-30"), ("o29", "Withdrawn", "2026-07-29"),
                                 ("o27", "Notice of 27 July", "2026-07-27"))  # fmt: skip
    news, history = without_history(old, diff(FEED, old, in_place_of_the_last), in_place_of_the_last)
    assert ("new", "id:o27") in kinds(news) and history == 0  # nothing above it left: a new release


def test_a_date_that_appears_or_changes_its_form_is_not_an_edit():
    old = items(("n1", "Circular on stablecoins", ""), ("n2", "Circular on custody", "2026-07-29"))
    dated = items(
        ("n1", "Circular on stablecoins", "2026-07-30"),
        ("n2", "Circular on custody", "29.07.26 (a form not read)"),
    )
    assert diff(FEED, old, dated) == []
    moved = items(("n1", "Circular on stablecoins", ""), ("n2", "Circular on custody", "2026-07-28"))
    assert kinds(diff(FEED, old, moved)) == [("changed", "id:n2")]  # another day: an edit


def test_a_translation_landing_in_a_chinese_listing_is_not_an_edit():
    """The SFC's Chinese API lists a release under its English title first, the Chinese one later."""
    old = items(("26PR123", "SFC grants licence to virtual asset trading platform", "2026-07-30"))
    new = items(("26PR123", "證監會向虛擬資產交易平台批出牌照", "2026-07-30"))
    assert diff(FEED, old, new) == []
    edited = items(("26PR123", "SFC grants licences to two virtual asset trading platforms", "2026-07-30"))
    assert kinds(diff(FEED, old, edited)) == [("changed", "id:26PR123")]


def test_a_reference_number_reused_for_another_release_is_a_change():
    old = items(("26PR107", "Market update", "2026-07-30"))
    back = items(
        ("26PR106", "SFC consults on stablecoin custody", "2026-07-31"),
        ("26PR107", "Market update", "2026-07-30"),
    )
    known = {"id:26PR106": "SFC reminds investors of fraudulent websites", "id:26PR107": "Market update"}
    (change,) = diff(FEED, old, back, known_keys=known)
    assert (change.kind, change.title, change.before) == (
        "changed", "SFC consults on stablecoin custody", "SFC reminds investors of fraudulent websites"
    )  # fmt: skip
    returned = items(
        ("26PR106", "SFC reminds investors of fraudulent websites", "2026-07-29"),
        *[("26PR107", "Market update", "2026-07-30")],
    )
    assert diff(FEED, old, returned, known_keys=known) == []  # back as it was: not news


def test_a_chinese_title_with_english_names_is_still_chinese():
    english = items(
        (
            "26PR99",
            "SFC obtains worldwide freezing order against Lo Yin Yat and Major Success Group Limited",
            "",
        )
    )
    chinese = items(("26PR99", "證監會取得針對盧衍溢及Major Success Group Limited的全球性凍結令", ""))
    assert diff(FEED, english, chinese) == []  # its translation landing
    english = items(("26PR51", "SFC warns public about 恒星交易所", ""))
    assert diff(FEED, english, items(("26PR51", "證監會提醒公眾留意恒星交易所", ""))) == []
    before = items(("26PR50", "證監會就JPEX發出警告", ""))
    after = items(("26PR50", "證監會就JPEX Exchange Limited及JPEX Global Trading Platform發出警告", ""))
    assert kinds(diff(FEED, before, after)) == [("changed", "id:26PR50")]  # an edit, in Chinese


def test_a_date_in_a_form_not_read_as_a_day_still_moves():
    old = items(("n1", "Quarterly report", "Jul 2026"))
    assert kinds(diff(FEED, old, items(("n1", "Quarterly report", "Aug 2026")))) == [("changed", "id:n1")]
    assert diff(FEED, old, items(("n1", "Quarterly report", "2026-07-31"))) == []  # now read as a day
    for same in ("July 2026", "JUL 2026", "2026年7月"):
        assert diff(FEED, old, items(("n1", "Quarterly report", same))) == []
    ago = items(("n1", "Quarterly report", "3 hours ago"))
    assert diff(FEED, ago, items(("n1", "Quarterly report", "4 hours ago"))) == []


def test_a_burst_of_releases_overflows_a_listing_and_the_same_days_retitled_do_not():
    old = items(("a", "Notice of 20 July", "2026-07-20"), ("b", "Notice of 21 July", "2026-07-21"))
    burst = items(("c", "Circular one", "2026-07-22"), ("d", "Circular two", "2026-07-22"))
    assert overflowed(old, burst)
    one_day = items(("a", "Notice one", "2026-01-21"), ("b", "Notice two", "2026-01-21"))
    other_language = items(("c", "通告一", "2026-01-21"), ("d", "通告二", "2026-01-21"))
    assert not overflowed(one_day, other_language)
    reworded = items(
        ("c", "Press release: Notice one", "2026-01-21"), ("d", "Press release: Notice two", "2026-01-21")
    )
    assert not overflowed(one_day, reworded)
    same_day_burst = items(("c", "Circular three", "2026-01-21"), ("d", "Circular four", "2026-01-21"))
    assert overflowed(one_day, same_day_burst)  # a busy day in a listing of the latest two


def api_items(*rows: tuple[str, str]) -> Snapshot:
    """Items as an API with no reference number keys them: by link, by title when the link is null."""
    found = tuple(
        Item(f"link:{link}" if link else f"title:{fingerprint(title)}", title, link, "2026-08-03")
        for title, link in rows
    )
    return Snapshot("items", found, hash=snapshot_hash(Snapshot("items", found)))


def test_an_api_record_whose_link_is_filled_in_or_rewritten_is_the_same_release():
    title, link = "HKMA announces stablecoin licences", "https://www.hkma.gov.hk/eng/press/20260803-3/"
    older = ("Exchange Fund Abridged Balance Sheet", "https://www.hkma.gov.hk/eng/press/20260801-3/")
    assert diff(FEED, api_items((title, ""), older), api_items((title, link), older)) == []
    assert diff(FEED, api_items((title, link), older), api_items((title, ""), older)) == []
    rewritten = link.replace("https://", "HTTPS://").rstrip("/")
    assert diff(FEED, api_items((title, link), older), api_items((title, rewritten), older)) == []


def test_a_linkless_record_and_a_new_one_of_the_same_title_are_two():
    """Still listed under its own key: the other one is new."""
    title = "Scam alert related to banks"
    old = api_items((title, ""))
    new = api_items((title, "https://www.hkma.gov.hk/eng/press/20260803-5/"), (title, ""))
    assert kinds(diff(FEED, old, new)) == [("new", "link:https://www.hkma.gov.hk/eng/press/20260803-5/")]


def test_what_an_older_version_stored_is_no_change_after_an_upgrade():
    """Titles stored with their HTML escapes, and a release stored under "id:26PR9|<title>" (one
    reference number under two titles): read right now, they must not alert CHANGED or REMOVED."""
    escaped = items(("26PR9", "HKMA &amp; SFC on stablecoin issuers&#8217; reserves", "2026-08-03"))
    decoded = items(("26PR9", "HKMA & SFC on stablecoin issuers’ reserves", "2026-08-03"))
    assert diff(FEED, escaped, decoded) == []
    twice = items(
        ("26PR9|sfcwarns", "SFC warns", "2026-08-03"), ("26PR9|證監會警告", "證監會警告", "2026-08-03")
    )
    once = items(("26PR9", "證監會警告", "2026-08-03"))
    assert diff(FEED, twice, once) == []


def test_two_reference_numbers_without_links_under_one_title_are_two_releases():
    title = "Circular to licensed stablecoin issuers"
    old = Snapshot("items", (Item("id:26EC1", title, "", "2026-08-01"),), hash="a")
    new = Snapshot(
        "items",
        (Item("id:26EC2", title, "", "2026-08-05"), Item("id:26EC1", title, "", "2026-08-01")),
        hash="b",
    )
    assert kinds(diff(FEED, old, new)) == [("new", "id:26EC2")]


def test_an_alerts_link_leaves_out_the_monitors_session_id():
    """The listing's links carry the session the monitor was given: not one for the reader."""
    link = "https://www.fstb.gov.hk/en/press/20261122-5.htm;jsessionid=5CE7A1B2C3"
    old = items(("1", "Older", "2026-11-20"))
    new = Snapshot("items", (Item("link:x", "FSTB on stablecoin", link, "2026-11-22"), *old.items), hash="n")
    (change,) = diff(FEED, old, new)
    assert change.link == "https://www.fstb.gov.hk/en/press/20261122-5.htm"
