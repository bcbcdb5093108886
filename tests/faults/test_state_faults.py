"""The state directory misbehaving: a full disk, a read-only volume, a second process, a clock
stepping back. Each test runs the installed command as a user would and reads the database after.

How the faults are made, honestly and without touching the code under test:
- disk full: a tiny tmpfs mounted in a private user + mount namespace (`unshare -rm`, no root
  needed), filled up but for 96 KB; the kernel answers ENOSPC exactly as a full disk does. Where
  namespaces are not allowed the test is skipped, and a second test uses RLIMIT_FSIZE instead: the
  kernel refuses to grow any file past a size (EFBIG), which SQLite meets as a failed write just
  the same. (SQLite's `PRAGMA max_page_count` is per connection, so it would need a hook in the
  monitor's own code: not used.)
- read-only: the state folder bind-mounted read-only in such a namespace (EROFS), as a container
  volume mounted `:ro`. Running as root, chmod would not stop anything.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from monitor.localsite import Response
from tests.conftest import ROOT, ROUND2, SFC_PRESS, TEST_SETTINGS, rss_source, run_cli
from tests.faults.conftest import assert_consistent, rows, write_config

BIG = """[[sources]]
id = "register"
regulator = "HKMA"
kind = "page"
url = "{base}/register.html"
"""
SFC_NEW = "NEW: SFC and HKMA issue joint circular on distribution of licensed stablecoins"


def page(rows_count: int) -> bytes:
    """A stablecoin register; with many rows, hundreds of KB that compress badly (hex ids)."""
    body = "".join(f"<tr><td>Issuer {n}</td><td>{os.urandom(24).hex()}</td></tr>" for n in range(rows_count))
    title = "Register of Licensed Stablecoin Issuers"
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1><table>{body}</table></body></html>".encode()


def namespaces_work(tmp_path: Path) -> bool:
    if not shutil.which("unshare"):
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def cli(monitor, *args: str) -> list[str]:
    return [sys.executable, "-m", "monitor", "--config", str(monitor.config), "--db", str(monitor.db), *args]


def baseline_then_news(monitor, capsys) -> None:
    """Round 1 stored; the site then has news for both sources, one of them 400 KB of it."""
    monitor.site.routes["/register.html"] = lambda h: Response(200, page(3), {"Content-Type": "text/html"})
    write_config(monitor, SFC_PRESS, BIG)
    assert monitor.round(capsys)[:2] == (0, "")
    big = page(8000)
    monitor.site.routes["/register.html"] = lambda h: Response(200, big, {"Content-Type": "text/html"})
    monitor.site.root = ROUND2


def assert_recovers_exactly_once(monitor) -> None:
    """With space again, the next run stores and alerts what the failed one could not, once."""
    done = run_cli("--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", "--all")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(SFC_NEW) == 1
    assert done.stdout.count("PAGE CHANGED: ") == 1
    assert rows(monitor.db, "SELECT source_id, kind FROM changes ORDER BY source_id") == [
        ("register", "page"),
        ("sfc-press-en", "new"),
    ]
    assert rows(monitor.db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)]
    assert_consistent(monitor.db)
    again = run_cli("--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", "--all")
    assert again.returncode == 0 and "NEW:" not in again.stdout and "PAGE CHANGED" not in again.stdout


def assert_failed_cleanly(code: int, out: str, err: str, db: Path, reason: str) -> None:
    assert code == 2, err
    assert "NEW:" not in out and "PAGE CHANGED" not in out  # no alert was delivered (the log is on stdout)
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: cannot write the state database {db}: {reason}"), err
    assert line.endswith("(the write was rolled back; free space or make it writable, then run again)")
    assert "Traceback" not in err


def test_disk_full_on_a_tiny_tmpfs(monitor, capsys, tmp_path):
    if not namespaces_work(tmp_path):
        pytest.skip("user and mount namespaces are not allowed here (the RLIMIT_FSIZE test covers it)")
    baseline_then_news(monitor, capsys)
    full, out = tmp_path / "full", tmp_path / "after"
    full.mkdir()
    out.mkdir()
    db = full / "monitor.db"
    script = textwrap.dedent(f"""
        set -u
        mount -t tmpfs -o size=1m tmpfs {full}
        cp {monitor.db}* {full}/
        avail=$(df -B1 --output=avail {full} | tail -1)
        fallocate -l $((avail - 98304)) {full}/filler
        {" ".join(cli(monitor, "run", "--once", "--all")).replace(str(monitor.db), str(db))} \\
            > {out}/stdout 2> {out}/stderr
        echo $? > {out}/code
        cp {full}/monitor.db* {out}/
    """)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    code = int((out / "code").read_text())
    assert_failed_cleanly(
        code, (out / "stdout").read_text(), (out / "stderr").read_text(), db, "database or disk is full"
    )
    assert_consistent(out / "monitor.db")
    assert rows(out / "monitor.db", "SELECT count(*) FROM changes WHERE source_id = 'register'") == [(0,)]

    for copy in out.glob("monitor.db*"):  # the disk has room again: carry on from what it left
        shutil.copy(copy, monitor.db.parent / copy.name)
    assert_recovers_exactly_once(monitor)


def _file_size_limit(limit: int):
    def limit_writes() -> None:
        signal.signal(
            signal.SIGXFSZ, signal.SIG_IGN
        )  # else the kernel kills the process; SIG_IGN survives exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


def test_disk_full_as_a_file_size_limit(monitor, capsys):
    baseline_then_news(monitor, capsys)
    limit = monitor.db.stat().st_size + 64 * 1024  # room to open the database, not for 400 KB
    done = subprocess.run(
        cli(monitor, "run", "--once", "--all"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")},
        preexec_fn=_file_size_limit(limit),
    )
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: cannot write the state database {monitor.db}: "), line
    assert "Traceback" not in done.stderr + done.stdout and "NEW:" not in done.stdout
    assert_consistent(monitor.db)
    assert rows(monitor.db, "SELECT count(*) FROM changes WHERE source_id = 'register'") == [(0,)]
    assert_recovers_exactly_once(monitor)


def test_a_read_only_state_folder_is_a_clear_error(monitor, capsys, tmp_path):
    if not namespaces_work(tmp_path):
        pytest.skip("user and mount namespaces are not allowed here")
    write_config(monitor, SFC_PRESS)
    assert monitor.round(capsys)[0] == 0
    state = monitor.db.parent
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    commands = {
        "run": cli(monitor, "run", "--once", "--all"),
        "log": cli(monitor, "log"),
    }
    script = f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && " + " ; ".join(
        f"{' '.join(command)} > {tmp_path}/{name}.out 2> {tmp_path}/{name}.err; echo $? > {tmp_path}/{name}.code"
        for name, command in commands.items()
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = {name: (tmp_path / f"{name}.code").read_text().strip() for name in commands}
    assert result == {"run": "2", "log": "2"}
    assert (tmp_path / "run.err").read_text() == (
        f"error: cannot lock the state database {monitor.db}: Read-only file system ({state} must be writable)\n"
    )
    assert (tmp_path / "log.err").read_text() == (
        f"error: cannot open the state database {monitor.db}: unable to open database file "
        "(is its folder writable, is the disk full?)\n"
    )
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before  # nothing half-written


def test_a_second_run_on_the_same_database_refuses(monitor, capsys):
    """Two `run --once` at the same time (two containers on one volume): the second refuses with a
    clear message and exit 2; the first completes; every alert is printed once, by the first."""
    write_config(monitor, SFC_PRESS, rss_source("held", "/held.xml"), settings=TEST_SETTINGS)
    feed = monitor.site.serve_file("/sfc/en/rss/circulars.xml")
    gate = threading.Event()
    gate.set()
    monitor.site.routes["/held.xml"] = lambda h: gate.wait(20) and feed
    assert monitor.round(capsys)[0] == 0
    monitor.site.root = ROUND2
    gate.clear()  # the first process's round waits on this feed, holding the lock
    first = subprocess.Popen(
        cli(monitor, "run", "--once", "--all"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while [p for p, _ in monitor.site.requests].count("/held.xml") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = run_cli("--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", "--all")
    alias = monitor.db.parent / "alias.db"  # the same database under another name
    alias.symlink_to(monitor.db)
    third = run_cli("--config", str(monitor.config), "--db", str(alias), "run", "--once", "--all")
    gate.set()
    out, err = first.communicate(timeout=60)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr == (
        f"error: {monitor.db} is in use by policy-monitor (pid {first.pid}); one process per database "
        "(a second one would send the same alerts)\n"
    )
    assert third.returncode == 2 and f"is in use by policy-monitor (pid {first.pid})" in third.stderr
    assert first.returncode == 0, err
    assert out.count(SFC_NEW) == 1
    assert rows(monitor.db, "SELECT count(*) FROM fetches") == [(4,)]  # 2 baseline + 2 by the first only


def test_a_second_writer_waits_instead_of_failing(monitor, capsys):
    """A `review` typed, or a round started, while another connection is writing waits for it (up
    to SQLite's busy timeout) instead of failing at once with 'database is locked'."""
    write_config(monitor, SFC_PRESS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    ((change_id,),) = rows(monitor.db, "SELECT id FROM changes")
    for command in (
        ["review", str(change_id), "--state", "reviewed", "--by", "amy"],
        ["run", "--once", "--all"],
    ):
        holder = sqlite3.connect(monitor.db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another writer, in the middle of its transaction
        release = threading.Timer(0.5, holder.execute, ["ROLLBACK"])
        release.start()
        started = time.monotonic()
        done = run_cli("--config", str(monitor.config), "--db", str(monitor.db), *command)
        release.join()
        holder.close()
        assert done.returncode == 0, done.stderr
        assert time.monotonic() - started >= 0.45  # it waited for the lock, then did its work
    assert rows(monitor.db, "SELECT state FROM reviews") == [("reviewed",)]
