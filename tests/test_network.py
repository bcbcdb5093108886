"""The connections under the fetcher: HTTPS with its certificate checked, and an operator's proxy.

Every regulator is on HTTPS; the rest of the suite runs on plain HTTP. The monitor's direct
connections use asyncio's streams (monitor/network.py); a proxy named in the environment is used
through httpx's own transport.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from monitor.localsite import LocalSite, Response
from monitor.network import AsyncioStream
from tests.conftest import ROUND1, SFC_PRESS, Monitor

FEED = ROUND1 / "sfc" / "en" / "rss" / "press-releases.xml"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl as an operator would."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_site(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with LocalSite(ROUND1, tls=context) as site:
        yield site


def _monitor(tmp_path, site, caplog) -> Monitor:
    caplog.set_level("INFO")
    return Monitor(tmp_path / "sources.toml", tmp_path / "state" / "monitor.db", site, caplog)


def test_an_https_source_is_polled_when_its_certificate_is_trusted(
    https_site, certificate, tmp_path, caplog, capsys, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # what httpx trusts, as for a company CA
    monitor = _monitor(tmp_path, https_site, caplog)
    monitor.write(SFC_PRESS)
    code, _, err = monitor.round(capsys)
    assert code == 0, err
    assert "sfc-press-en: baseline, 6 items/lines" in err
    code, _, err = monitor.round(capsys)  # the second round reuses or reopens the TLS connection
    assert code == 0, err
    assert "sfc-press-en: unchanged" in err


def test_an_untrusted_certificate_fails_the_source_and_says_why(
    https_site, tmp_path, caplog, capsys, monkeypatch
):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monitor = _monitor(tmp_path, https_site, caplog)
    monitor.write(SFC_PRESS)
    code, _, err = monitor.round(capsys)
    assert code == 1
    assert (
        "source sfc-press-en failed: connection failed: ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]" in err
    )
    assert "self-signed certificate" in err


def test_a_proxy_named_in_the_environment_carries_the_requests(tmp_path, caplog, capsys, monkeypatch):
    """An operator behind a company proxy sets HTTP_PROXY/HTTPS_PROXY; sfc.example.hk does not
    resolve here, so only the proxy can answer."""
    with LocalSite(ROUND1) as proxy:
        feed_url = "http://sfc.example.hk/sfc/en/rss/press-releases.xml"
        proxy.routes[feed_url] = lambda handler: Response(
            200, FEED.read_bytes(), {"Content-Type": "application/rss+xml; charset=utf-8"}
        )
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monitor = _monitor(tmp_path, proxy, caplog)
        monitor.write(SFC_PRESS.replace("{base}", "http://sfc.example.hk"))
        code, _, err = monitor.round(capsys)
    assert code == 0, err
    assert "sfc-press-en: baseline, 6 items/lines" in err
    assert [path for path, _ in proxy.requests] == [feed_url]


def test_a_round_fetches_over_asyncio_streams(monitor, capsys, monkeypatch):
    """The CPU saving rests on the fetcher handing httpx our transport and on httpx keeping the
    pool we give it: a new httpx that did not would silently cost ~5% more CPU again. A
    NO_PROXY of its own (set in many company set-ups) does not turn it off."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "localhost,.internal")
    reads = []
    read = AsyncioStream.read

    async def counted(self, max_bytes: int, timeout: float | None = None) -> bytes:
        reads.append(max_bytes)
        return await read(self, max_bytes, timeout)

    monkeypatch.setattr(AsyncioStream, "read", counted)
    monitor.write(SFC_PRESS)
    code, _, err = monitor.round(capsys)
    assert code == 0, err
    assert "sfc-press-en: baseline" in err and reads
