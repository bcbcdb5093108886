"""Feeds and pages cannot make a parser expand entities (billion laughs), fetch or read anything
(external entities), or have a local file read in their place."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from monitor.localsite import Response
from tests.conftest import FSTB_LISTING, ROOT, TEST_SETTINGS, rss_source
from tests.faults.conftest import rows, write_config


def laughs(root: str) -> str:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    return f"<!DOCTYPE {root} [{entities}]>"


def external(root: str, site_url: str, secret: Path) -> str:
    return (
        f'<!DOCTYPE {root} [<!ENTITY file SYSTEM "{secret.as_uri()}">'
        f'<!ENTITY net SYSTEM "{site_url}/xxe-probe">]>'
    )


FEED = '<?xml version="1.0"?>\n{doctype}<rss version="2.0"><channel><title>x</title><item><title>Stablecoin {ref}</title><guid>26PR1</guid><link>https://www.sfc.hk/1</link><description>{ref}</description></item></channel></rss>'
LISTING_PAGE = '{doctype}<html><body><table class="press-list"><tr class="press-item"><td class="date">2026-08-01</td><td class="title"><a href="/1.htm">Stablecoin {ref}</a></td></tr></table></body></html>'


@pytest.mark.parametrize("kind", ["rss", "html"])
@pytest.mark.parametrize("attack", ["billion-laughs", "external-entities"])
def test_entities_are_never_expanded(monitor, capsys, tmp_path, kind, attack):
    secret = tmp_path / "secret.txt"
    secret.write_text("FILE-CONTENT-MARKER", encoding="utf-8")
    root = "rss" if kind == "rss" else "html"
    if attack == "billion-laughs":
        doctype, ref = laughs(root), "&lol9;"
    else:
        doctype, ref = external(root, monitor.site.base_url, secret), "&file; &net;"
    body = (FEED if kind == "rss" else LISTING_PAGE).format(doctype=doctype, ref=ref).encode()
    monitor.site.routes["/attack"] = lambda h: Response(
        200, body, {"Content-Type": "application/xml" if kind == "rss" else "text/html"}
    )
    source = (
        rss_source("attack", "/attack")
        if kind == "rss"
        else FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/attack").replace(
            '"fstb-press-tc"', '"attack"'
        )
    )
    write_config(monitor, source, settings=TEST_SETTINGS)
    started = time.monotonic()
    code, _, err = monitor.round(capsys)
    assert time.monotonic() - started < 5
    if kind == "rss":  # feedparser drops the DOCTYPE, so the entities are undefined: a malformed feed
        assert code == 1 and "source attack failed: malformed feed: " in err
    else:  # the HTML parser knows no DTD entities: the reference stays text
        assert code == 0
        (title,) = [t for (t,) in rows(monitor.db, "SELECT title FROM items")]
        assert title == f"Stablecoin {ref}"
    stored = b"".join(path.read_bytes() for path in monitor.db.parent.iterdir())
    assert b"FILE-CONTENT-MARKER" not in stored and b"lollollol" not in stored
    assert [p for p, _ in monitor.site.requests] == ["/attack"]  # nothing fetched for an entity


def test_a_feed_body_naming_a_local_file_is_not_read(monitor, capsys, tmp_path):
    """feedparser.parse(bytes) first tries the bytes as a file name; the monitor must never."""
    local = tmp_path / "local-feed.xml"
    local.write_text(FEED.format(doctype="", ref="LOCAL-FILE-MARKER"), encoding="utf-8")
    monitor.site.routes["/feed"] = lambda h: Response(
        200, str(local).encode(), {"Content-Type": "application/rss+xml"}
    )
    write_config(monitor, rss_source("sfc-press-en", "/feed"), settings=TEST_SETTINGS)
    code, _, err = monitor.round(capsys)
    assert code == 1 and "source sfc-press-en failed: malformed feed" in err
    assert rows(monitor.db, "SELECT count(*) FROM items") == [(0,)]


def test_no_code_parses_xml_with_a_resolving_parser():
    """lxml's XML parser resolves entities by default; only the HTML parser (which knows no DTD
    entities) and feedparser (which drops the DOCTYPE) may read scraped markup."""
    risky = re.compile(r"etree\.(XML|fromstring|parse|XMLParser|iterparse)\b|xml\.dom|minidom|ElementTree")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "monitor").rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if risky.search(line)
    ]
    assert offenders == []
