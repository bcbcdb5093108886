"""The system clock stepping back (an NTP correction, a VM restored from a snapshot) must not reorder
the change log or stall polling. The CLI runs under libfaketime (`faketime -f -2d`): the whole
process, Python, SQLite and all, sees a clock two days behind the previous run's.

Scheduling of the long-running `run` (its idle wait between rounds) is the scheduler's work on the
docker branch; what exists here is `run --once` choosing due sources, tested below.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import lxml.html
import pytest

from monitor.localsite import Response
from tests.conftest import ROOT, SFC_PRESS, rss_source, run_cli
from tests.faults.conftest import rows, write_config

FAKETIME = shutil.which("faketime")
pytestmark = pytest.mark.skipif(not FAKETIME, reason="faketime is not installed (.ci/run installs it)")


def feed(*titles: str) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><guid>{t.split()[0]}</guid><link>https://www.sfc.hk/{t.split()[0]}</link></item>"
        for t in titles
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>SFC</title>{items}</channel></rss>'.encode()
    )


def run(monitor, *args: str, shift: str = ""):
    command = ["--config", str(monitor.config), "--db", str(monitor.db), *args]
    if not shift:
        return run_cli(*command)
    # `faketime -f -2d python -m monitor ...`: the same command with the clock two days behind.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    return subprocess.run(
        [FAKETIME, "-f", shift, sys.executable, "-m", "monitor", *command],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip


def test_a_clock_stepping_back_keeps_the_change_log_in_order(monitor, capsys, tmp_path):
    current = {"body": feed("26PR1 Market update")}
    monitor.site.routes["/feed.xml"] = lambda h: Response(
        200, current["body"], {"Content-Type": "application/rss+xml"}
    )
    write_config(monitor, rss_source("sfc-feed", "/feed.xml"), SFC_PRESS)
    assert run(monitor, "run", "--once").returncode == 0  # baseline, today

    current["body"] = feed("26PR2 Stablecoin licensing update", "26PR1 Market update")
    first = run(monitor, "run", "--once", "--all")
    assert first.returncode == 0 and "NEW: 26PR2 Stablecoin licensing update" in first.stdout

    current["body"] = feed(
        "26PR3 Stablecoin issuer list", "26PR2 Stablecoin licensing update", "26PR1 Market update"
    )
    behind = run(monitor, "run", "--once", shift="-2d")  # not --all: are the sources still due?
    assert behind.returncode == 0, behind.stderr
    assert "NEW: 26PR3 Stablecoin issuer list" in behind.stdout and "26PR2" not in behind.stdout

    detected = rows(monitor.db, "SELECT id, title, detected_at FROM changes ORDER BY id")
    assert [t for _, t, _ in detected] == [
        "26PR2 Stablecoin licensing update",
        "26PR3 Stablecoin issuer list",
    ]
    assert detected[1][2] < detected[0][2]  # the later change carries the earlier clock reading

    log = json.loads(run(monitor, "log", "--format", "json").stdout)
    assert [e["title"] for e in log] == ["26PR3 Stablecoin issuer list", "26PR2 Stablecoin licensing update"]
    assert run(monitor, "show", str(detected[1][0])).returncode == 0

    report = tmp_path / "report"
    assert run(monitor, "report", "--out", str(report)).returncode == 0
    index = lxml.html.fromstring((report / "index.html").read_text(encoding="utf-8"))
    assert [a.text for a in index.xpath("//tbody/tr//a")] == [
        "26PR3 Stablecoin issuer list",
        "26PR2 Stablecoin licensing update",
    ]  # newest first by when it was logged, not by a clock that went back

    again = run(monitor, "run", "--once", shift="-2d")  # just polled by that clock: nothing is due
    assert again.returncode == 0 and "round: 0 of 2 sources polled" in again.stdout
    assert "NEW:" not in again.stdout
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM fetches").fetchone() == (6,)
