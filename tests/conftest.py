"""Shared fixtures: a local regulator site with named misbehaviours, configs, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.localsite import LocalSite, Response

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "monitor" / "demo" / "site"
ROUND1, ROUND2 = SITE / "round1", SITE / "round2"
SHIPPED_TOPICS = (ROOT / "sources.toml").read_text(encoding="utf-8")
TOPICS = SHIPPED_TOPICS[
    SHIPPED_TOPICS.index("[topics.stablecoin]") : SHIPPED_TOPICS.index(
        "# ----", SHIPPED_TOPICS.index("[topics.stablecoin]")
    )
]

# Fast failure settings so the misbehaviour tests take a second, not a minute.
TEST_SETTINGS = """[settings]
interval = "15m"
timeout = 1
retries = 1
retry_backoff = 0.05
max_retry_after = 0.5
max_bytes = 200000

[telegram]
private_interval = 0.01
group_interval = 0.01
global_interval = 0
delayed_after = "1h"
"""

SFC_PRESS = """[[sources]]
id = "sfc-press-en"
regulator = "SFC"
kind = "rss"
url = "{base}/sfc/en/rss/press-releases.xml"
"""
FSTB_LISTING = """[[sources]]
id = "fstb-press-tc"
regulator = "FSTB"
kind = "html"
url = "{base}/fstb/tc/press-releases.htm"
items = "table.press-list tr.press-item"
title = "td.title"
link = "td.title a"
date = "td.date"
"""
REGISTER = """[[sources]]
id = "hkma-stablecoin-register"
regulator = "HKMA"
kind = "page"
url = "{base}/hkma/eng/stablecoin-register.html"
select = "main#content"
exclude = [".share-tools"]
ignore = ['^Last revision date']
"""


def rss_source(source_id: str, path: str) -> str:
    return f'[[sources]]\nid = "{source_id}"\nregulator = "SFC"\nkind = "rss"\nurl = "{{base}}{path}"\n'


def install_misbehaviours(site: LocalSite) -> None:
    """Named misbehaviours, as regulator sites really show them."""

    def slow(handler):
        time.sleep(2.5)  # longer than the test timeout of 1 s
        return site.serve_file("/sfc/en/rss/press-releases.xml")

    def down(handler):
        return Response(
            503, b"<html><title>Service Unavailable</title></html>", {"Content-Type": "text/html"}
        )

    def redirect_loop(handler):
        return Response(302, b"", {"Location": "/redirect-loop"})

    def soft_404(handler):
        page = "<html><head><title>Page Not Found - SFC</title></head><body>Sorry</body></html>"
        return Response(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def truncated_feed(handler):
        return Response(
            200,
            site.serve_file("/sfc/en/rss/press-releases.xml").body[:1500],
            {"Content-Type": "application/rss+xml"},
        )

    def big5_labelled_utf8(handler):
        page = site.serve_file("/fstb/tc/press-releases.htm")
        return Response(200, page.body, {"Content-Type": "text/html; charset=utf-8"})

    def image(handler):
        return Response(200, b"\x89PNG\r\n\x1a\n", {"Content-Type": "image/png"})

    def huge(handler):
        return Response(200, b"<html>" + b"x" * 300_000 + b"</html>", {"Content-Type": "text/html"})

    site.routes.update(
        {
            "/slow": slow,
            "/down": down,
            "/redirect-loop": redirect_loop,
            "/soft-404": soft_404,
            "/truncated-feed": truncated_feed,
            "/big5-labelled-utf8": big5_labelled_utf8,
            "/image": image,
            "/huge": huge,
        }
    )


@pytest.fixture
def site():
    with LocalSite(ROUND1) as local:
        install_misbehaviours(local)
        yield local


@dataclass
class Monitor:
    """The CLI as a user runs it, against a config and database in a temporary folder."""

    config: Path
    db: Path
    site: LocalSite
    caplog: pytest.LogCaptureFixture

    def write(self, *sources: str) -> None:
        body = "\n".join(s.replace("{base}", self.site.base_url) for s in sources)
        self.config.write_text(TEST_SETTINGS + "\n" + TOPICS + "\n" + body, encoding="utf-8")

    def __call__(self, *args: str, capsys) -> tuple[int, str, str]:
        self.caplog.clear()
        code = main(["--config", str(self.config), "--db", str(self.db), *args])
        captured = capsys.readouterr()
        logged = "".join(f"{message}\n" for message in self.caplog.messages)  # what stderr shows
        return code, captured.out, captured.err + logged

    def round(self, capsys, folder: Path | None = None) -> tuple[int, str, str]:
        if folder:
            self.site.root = folder
        return self("run", "--once", "--all", capsys=capsys)


@pytest.fixture
def monitor(tmp_path, site, caplog) -> Monitor:
    caplog.set_level("INFO")
    return Monitor(tmp_path / "sources.toml", tmp_path / "state" / "monitor.db", site, caplog)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command in a separate process: exit codes and stderr exactly as a user sees them."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=full_env,
        timeout=120,
    )
