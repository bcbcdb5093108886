"""What a fetch follows: http(s) only, a limited number of redirects, within the source's site, and
never from the internet into the operator's network unless [settings] allow_private_redirects."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from monitor.localsite import Response
from monitor.redirects import non_public, refusal, same_site
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
