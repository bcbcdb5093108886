"""What a fetch follows: http(s) only, a limited number of redirects, within the source's site, and
never from the internet into the operator's network unless [settings] allow_private_redirects."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from monitor.localsite import Response
from monitor.redirects import link_refusal, non_public, refusal, same_site
from tests.conftest import rss_source
from tests.faults.conftest import FAULT_SETTINGS, rows, write_config


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("www.sfc.hk", "www.sfc.hk", True),
        ("www.sfc.hk", "sfc.hk", True),
        ("www.sfc.hk", "apps.sfc.hk", True),
        ("apps.sfc.hk", "www.sfc.hk", True),
        ("WWW.HKMA.GOV.HK", "www.hkma.gov.hk.", True),
        ("www.hkma.gov.hk", "api.hkma.gov.hk", True),
        ("www.hkma.gov.hk", "www.info.gov.hk", False),
        ("www.sfc.hk", "sfc.hk.evil.example", False),
        ("www.sfc.hk", "evilsfc.hk", False),
        ("www.sfc.hk", "hk", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("127.0.0.1", "localhost", False),
    ],
)
def test_same_site(a, b, same):
    assert same_site(a, b) is same


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", ""),
        ("2606:2800:220:1:248:1893:25c8:1946", ""),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("0.0.0.0", "private"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_non_public_addresses(address, kind):
    assert non_public(ipaddress.ip_address(address)) == kind


def resolver(table: dict[str, str]):
    async def resolve(host: str):
        return [ipaddress.ip_address(a) for a in table.get(host, "").split()]

    return resolve


DNS = resolver(
    {
        "www.sfc.hk": "93.184.216.34",
        "apps.sfc.hk": "93.184.216.35",
        "intranet.sfc.hk": "10.0.0.7",
        "rebind.sfc.hk": "93.184.216.36 127.0.0.1",
        "mirror.corp": "10.0.0.5",
        "files.corp": "10.0.0.6",
        "169.254.169.254": "169.254.169.254",
    }
)


@pytest.mark.parametrize(
    ("current", "target", "allow_private", "reason"),
    [
        ("https://www.sfc.hk/feed", "https://apps.sfc.hk/feed", False, ""),
        ("http://www.sfc.hk/feed", "https://www.sfc.hk/feed", False, ""),
        ("https://www.sfc.hk/feed", "https://intranet.sfc.hk/", False,
         "refused a redirect from www.sfc.hk to intranet.sfc.hk, a private address "
         "(set [settings] allow_private_redirects = true if this is intended)"),
        ("https://www.sfc.hk/feed", "https://rebind.sfc.hk/", False,
         "refused a redirect from www.sfc.hk to rebind.sfc.hk, a loopback address "
         "(set [settings] allow_private_redirects = true if this is intended)"),
        ("https://www.sfc.hk/feed", "http://169.254.169.254/latest/meta-data/", False,
         "refused a redirect from www.sfc.hk to 169.254.169.254, a link-local address "
         "(set [settings] allow_private_redirects = true if this is intended)"),
        ("https://www.sfc.hk/feed", "https://intranet.sfc.hk/", True, ""),
        ("http://mirror.corp/feed", "http://mirror.corp/feed2", False, ""),  # configured on one
        ("http://mirror.corp/feed", "http://files.corp/feed", False,
         "redirected to another site: http://files.corp/feed (from mirror.corp); "
         "if the source has moved, update its url"),
        ("https://www.sfc.hk/feed", "file:///etc/passwd", True,
         "refused a redirect to a file: address (file:/etc/passwd)"),
        ("https://www.sfc.hk/feed", "ftp://www.sfc.hk/feed", True,
         "refused a redirect to a ftp: address (ftp://www.sfc.hk/feed)"),
        ("https://www.sfc.hk/feed", "https://evil.example/feed", True,
         "redirected to another site: https://evil.example/feed (from www.sfc.hk); "
         "if the source has moved, update its url"),
    ],
)  # fmt: skip
def test_redirect_policy(current, target, allow_private, reason):
    got = asyncio.run(refusal(httpx.URL(current), httpx.URL(target), allow_private, DNS))
    assert got == reason


@pytest.mark.parametrize(
    ("source", "link", "allow_private", "reason"),
    [
        ("https://www.hkma.gov.hk/feed", "https://www.hkma.gov.hk/eng/news/1.html", False, ""),
        ("https://www.sfc.hk/feed", "https://www.info.gov.hk/gia/1.pdf", False, ""),  # another bureau's PDF
        ("https://www.sfc.hk/feed", "http://169.254.169.254/latest/meta-data/", False,
         "refused a link from www.sfc.hk to 169.254.169.254, a link-local address "
         "(set [settings] allow_private_redirects = true if this is intended)"),
        ("https://www.sfc.hk/feed", "https://rebind.sfc.hk/", False,
         "refused a link from www.sfc.hk to rebind.sfc.hk, a loopback address "
         "(set [settings] allow_private_redirects = true if this is intended)"),
        ("https://www.sfc.hk/feed", "https://intranet.sfc.hk/", True, ""),
        ("http://mirror.corp/feed", "http://files.corp/1.pdf", False, ""),  # a source inside reads inside
        ("https://www.sfc.hk/feed", "file:///etc/passwd", True, "refused a link to a file: address (file:/etc/passwd)"),
    ],
)  # fmt: skip
def test_link_policy(source, link, allow_private, reason):
    """Links read from content (detail pages, PDFs) are held to a redirect's rules but the site."""
    assert asyncio.run(link_refusal(httpx.URL(source), httpx.URL(link), allow_private, DNS)) == reason


def test_a_public_feed_linking_into_the_local_network_is_not_followed(monitor, capsys, monkeypatch):
    """A compromised feed's item links the cloud metadata address, and a detail page links a PDF
    on a private address: neither is requested, and the item still alerts, on its title."""
    public = "http://93.184.216.34"
    monkeypatch.setenv("HTTP_PROXY", monitor.site.base_url)  # as above: a public source, by proxy
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    def feed(*items: tuple[str, str]) -> Response:
        entries = "".join(f"<item><title>{t}</title><link>{link}</link></item>" for t, link in items)
        body = (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>HKMA</title>{entries}</channel></rss>'
        )
        return Response(200, body.encode(), {"Content-Type": "application/rss+xml"})

    old = [(f"Banking circular {i}", f"{public}/eng/old/{i}.html") for i in range(5)]
    metadata, internal_pdf = "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/admin/export.pdf"
    new = [
        ("Stablecoin issuers: licensing update", metadata),
        ("Stablecoin guidance", f"{public}/eng/2.html"),
    ]
    monitor.site.routes[f"{public}/feed.xml"] = lambda h: feed(*old)
    source = rss_source("hkma-press-en", "/feed.xml").replace("{base}", public) + 'detail = "link"\n'
    write_config(monitor, source)
    assert monitor.round(capsys)[0] == 0
    monitor.site.routes[f"{public}/feed.xml"] = lambda h: feed(*old, *new)
    page = f'<html><body><main><p>Stablecoin issuers must comply.</p><a href="{internal_pdf}">Annex</a></main></body></html>'
    monitor.site.routes[f"{public}/eng/2.html"] = lambda h: Response(
        200, page.encode(), {"Content-Type": "text/html"}
    )
    code, out, _ = monitor.round(capsys)
    assert code == 0 and "Stablecoin issuers: licensing update" in out
    asked = [path for path, _ in monitor.site.requests]
    assert metadata not in asked and internal_pdf not in asked and f"{public}/eng/2.html" in asked
    assert rows(monitor.db, "SELECT body_status FROM changes WHERE title LIKE '%licensing%'") == [
        ("not fetched: refused a link from 93.184.216.34 to 169.254.169.254, a link-local address "
         "(set [settings] allow_private_redirects = true if this is intended)",)
    ]  # fmt: skip


# --- end to end, through the CLI ----------------------------------------------------------------


def redirecting(location: str):
    return lambda handler: Response(302, b"", {"Location": location})


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("file:///etc/passwd", "refused a redirect to a file: address (file:/etc/passwd)"),
        ("ftp://127.0.0.1/feed.xml", "refused a redirect to a ftp: address (ftp://127.0.0.1/feed.xml)"),
        (
            "http://127.0.0.2:9/feed.xml",
            "redirected to another site: http://127.0.0.2:9/feed.xml (from 127.0.0.1)",
        ),
    ],
    ids=["file", "ftp", "another-address"],
)
def test_a_refused_redirect_fails_the_source_without_following_it(monitor, capsys, location, reason):
    monitor.site.routes["/moved.xml"] = redirecting(location)
    write_config(monitor, rss_source("moved", "/moved.xml"))
    code, out, err = monitor.round(capsys)
    assert (code, out) == (1, "")
    assert f"source moved failed: {reason}" in err
    assert [p for p, _ in monitor.site.requests] == ["/moved.xml"]
    assert rows(monitor.db, "SELECT status, final_url FROM fetches") == [("error", "")]


def test_a_redirect_within_a_local_source_is_followed(monitor, capsys):
    """The local site is on loopback itself, so its own redirects are allowed without the setting."""
    monitor.site.routes["/moved.xml"] = redirecting("/sfc/en/rss/press-releases.xml")
    write_config(monitor, rss_source("moved", "/moved.xml"))
    assert monitor.round(capsys)[0] == 0
    (final_url,) = rows(monitor.db, "SELECT final_url FROM fetches")[0]
    assert final_url == monitor.site.url("/sfc/en/rss/press-releases.xml")


@pytest.mark.parametrize("allowed", [False, True], ids=["default", "allow_private_redirects"])
def test_a_public_source_redirecting_into_the_local_network(monitor, capsys, monkeypatch, allowed):
    """A source on a public address (reached through an HTTP proxy, which is how a test on a machine
    without internet can have one) redirects to the cloud metadata address: refused by default.
    With the setting on, the private address is allowed, and it still fails as another site."""
    public = "http://93.184.216.34/feed.xml"
    monkeypatch.setenv("HTTP_PROXY", monitor.site.base_url)  # httpx honours the proxy variables
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monitor.site.routes[public] = redirecting("http://169.254.169.254/latest/meta-data/")
    settings = FAULT_SETTINGS.replace("[settings]\n", "[settings]\nallow_private_redirects = true\n")
    source = rss_source("public", "/feed.xml").replace("{base}", "http://93.184.216.34")
    write_config(monitor, source, settings=settings if allowed else FAULT_SETTINGS)
    code, _, err = monitor.round(capsys)
    assert code == 1
    if allowed:
        assert "source public failed: redirected to another site: http://169.254.169.254/" in err
    else:
        assert (
            "source public failed: refused a redirect from 93.184.216.34 to 169.254.169.254, a link-local "
            "address (set [settings] allow_private_redirects = true if this is intended)"
        ) in err
    assert [p for p, _ in monitor.site.requests] == [public]  # the proxy saw nothing else


def test_allow_private_redirects_must_be_a_boolean(monitor, capsys):
    write_config(
        monitor,
        rss_source("x", "/x.xml"),
        settings=FAULT_SETTINGS.replace("[settings]\n", '[settings]\nallow_private_redirects = "yes"\n'),
    )
    code, _, err = monitor("validate", capsys=capsys)
    assert code == 2 and "[settings]: allow_private_redirects: must be true or false" in err


def test_a_link_whose_name_is_private_by_the_time_it_is_connected_to_is_refused(site, monkeypatch):
    """DNS rebinding: checked, the link's name was public; connected to, it is this machine. The
    address connected to is checked too, and nothing is requested from it."""
    import functools

    from monitor import fetch
    from monitor.errors import FetchError
    from monitor.models import Settings, Source
    from monitor.redirects import is_public

    # what the checks before the request see: the link's name is public
    names = resolver({"www.sfc.hk": "93.184.216.34", "localhost": "93.184.216.36", "127.0.0.1": "127.0.0.1"})
    monkeypatch.setattr(fetch, "link_refusal", functools.partial(link_refusal, resolve=names))
    monkeypatch.setattr(fetch, "is_public", functools.partial(is_public, resolve=names))
    site.routes["/admin/export.pdf"] = lambda h: Response(
        200, b"%PDF-1.4 secret", {"Content-Type": "application/pdf"}
    )
    link = site.base_url.replace("127.0.0.1", "localhost") + "/admin/export.pdf"  # resolves to 127.0.0.1
    settings = Settings(retries=2, retry_backoff=30, timeout=5)  # a retry would wait: it must not

    def source(url: str) -> Source:
        return Source(id="sfc-press-en", regulator="SFC", kind="rss", url=url, topics=(), interval=1800)

    public, on_this_machine = (
        source("https://www.sfc.hk/en/RSS-Feeds/Press-releases"),
        source(site.base_url + "/feed.xml"),
    )

    async def fetch_links(*sources: Source) -> list:
        async with fetch.open_fetcher(settings) as fetcher:  # one fetcher: its kept-alive connections
            results = []
            for one in sources:
                try:
                    results.append((await fetcher.fetch_document(one, link)).body)
                except FetchError as exc:
                    results.append(str(exc))
            return results

    refused = (
        "refused a link to localhost: a loopback address when connected to "
        "(set [settings] allow_private_redirects = true if this is intended)"
    )
    assert asyncio.run(fetch_links(public)) == [refused]
    assert "/admin/export.pdf" not in [path for path, _ in site.requests]
    # a source on this machine reads on it; its connection, kept alive, is not the public source's way in
    assert asyncio.run(fetch_links(on_this_machine, public)) == [b"%PDF-1.4 secret", refused]
    assert [path for path, _ in site.requests].count("/admin/export.pdf") == 1
