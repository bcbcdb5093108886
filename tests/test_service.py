"""The long-running `policy-monitor run` as a real process: its schedule, a clean stop on SIGTERM or
SIGINT, `policy-monitor health`, and the log lines a container's log collector reads."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from monitor.localsite import Response
from tests.conftest import FSTB_LISTING, REGISTER, ROUND2, SFC_PRESS, rss_source, run_cli
from tests.telegram_stub import TelegramStub
from tests.test_telegram import newer_sfc_feed

TOKEN = "123456:SECRET-token-never-logged"
PRIVATE, GROUP = "1001", "-2002"
SOURCES = (
    SFC_PRESS,
    rss_source("sfc-circulars-en", "/sfc/en/rss/circulars.xml"),
    rss_source("hkma-press-en", "/hkma/eng/rss/press-release.xml"),
    FSTB_LISTING,
    REGISTER,
)  # round 2: 5 alerts, one of them from the register


@pytest.fixture
def telegram():
    with TelegramStub(token=TOKEN) as stub:
        yield stub


def telegram_env(stub: TelegramStub) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_IDS": f"{PRIVATE},{GROUP}",
        "TELEGRAM_API_URL": stub.base_url,
    }


def schedule(monitor, settings: str) -> None:
    """The monitor's config with extra [settings] lines (the tests' site is one host: no spacing)."""
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(text.replace("[settings]\n", f"[settings]\n{settings}\n", 1), encoding="utf-8")


def start(monitor, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(monitor.config), "--db", str(monitor.db), *args],
        env={**clean, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen, signum: int) -> tuple[int, float, str, str]:
    sent = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=20)
    return process.returncode, time.monotonic() - sent, out, err


def query(monitor, sql: str) -> list[tuple]:
    with sqlite3.connect(monitor.db) as conn:
        return conn.execute(sql).fetchall()


def wait_until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except sqlite3.OperationalError:  # the process is still creating the database
            pass
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def sent_to(stub: TelegramStub, chat: str) -> list[str]:
    return [m["text"] for m in stub.sent if str(m["chat_id"]) == chat]


def test_sigterm_during_a_round_stops_cleanly_and_loses_or_repeats_no_alert(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    schedule(monitor, "host_spacing = 0\ncatch_up = 0")
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        text.replace("timeout = 1\n", "timeout = 30\n"), encoding="utf-8"
    )  # no giving up
    monitor.round(capsys)  # the baseline
    monitor.site.root = ROUND2
    release = threading.Event()

    def hanging_register(handler):
        release.wait(20)  # the register answers only after the process was stopped
        return monitor.site.serve_file("/hkma/eng/stablecoin-register.html")

    monitor.site.routes["/hkma/eng/stablecoin-register.html"] = hanging_register
    telegram.down()  # alerts wait in the outbox until the stop
    process = start(monitor, "run", "--all", env=telegram_env(telegram))
    try:
        # the four fast sources are committed (8 alerts queued); the register is being fetched
        wait_until(lambda: query(monitor, "SELECT count(*) FROM fetches WHERE status = 'changed'") == [(4,)])
        time.sleep(0.3)  # the sender tried, and failed
        assert telegram.sent == [] and query(monitor, "SELECT count(*) FROM outbox") == [(8,)]
        telegram.up()
        code, seconds, out, err = stop(process, signal.SIGTERM)
    finally:
        release.set()
        process.kill()
    assert code == 0 and seconds < 8, (code, seconds, err)
    assert query(monitor, "PRAGMA integrity_check") == [("ok",)]
    assert len(sent_to(telegram, PRIVATE)) == 4 and len(sent_to(telegram, GROUP)) == 4  # sent at the stop
    assert query(monitor, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)]
    assert "SIGTERM: stopping" in out
    assert "Traceback" not in out + err and TOKEN not in out + err

    restarted = run_cli(
        "--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", "--all",
        env=telegram_env(telegram),
    )  # fmt: skip
    assert restarted.returncode == 0, restarted.stderr
    for chat in (PRIVATE, GROUP):
        texts = sent_to(telegram, chat)
        assert len(texts) == 5 and len(set(texts)) == 5  # each alert once: none lost, none repeated
        assert any("SC0003" in text for text in texts)
    assert query(monitor, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)]
    assert query(monitor, "PRAGMA integrity_check") == [("ok",)]


def test_sigterm_while_sending_stops_within_seconds_and_the_rest_goes_after_the_restart(
    monitor, telegram, capsys
):
    """`run --once` stopped in the middle of a delivery held back by Telegram's rate limits."""
    monitor.write(*SOURCES)
    text = monitor.config.read_text(encoding="utf-8")
    text = text.replace("private_interval = 0.01", "private_interval = 1.5")
    monitor.config.write_text(text.replace("group_interval = 0.01", "group_interval = 1.5"), encoding="utf-8")
    monitor.round(capsys)  # the baseline
    monitor.site.root = ROUND2
    process = start(monitor, "run", "--once", "--all", env=telegram_env(telegram))
    try:
        wait_until(lambda: len(telegram.sent) >= 2)  # the first message to each chat is out
        code, seconds, out, err = stop(process, signal.SIGTERM)
    finally:
        process.kill()
    assert code == 0 and seconds < 7, (code, seconds, err)
    for chat in (PRIVATE, GROUP):
        assert 1 <= len(sent_to(telegram, chat)) < 5  # sent for a few seconds, then stopped
    assert "stopping; the rest stays pending for the next start" in out and "Traceback" not in err

    restarted = run_cli(
        "--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", env=telegram_env(telegram)
    )
    assert restarted.returncode == 0, restarted.stderr
    for chat in (PRIVATE, GROUP):
        texts = sent_to(telegram, chat)
        assert len(texts) == 5 and len(set(texts)) == 5  # none lost, none repeated
    assert query(monitor, "SELECT count(*) FROM outbox WHERE status = 'pending'") == [(0,)]


def test_each_source_on_its_interval_never_twice_at_once_and_sigint_stops(monitor):
    """Two sources due every second; one takes 1.6 s: it is not started again while it runs, and
    it holds the other back in nothing. One log line per source per round, on stdout."""
    monitor.write(rss_source("fast", "/fast.xml"), rss_source("slow", "/slow.xml"))
    schedule(monitor, "jitter = 0\nhost_spacing = 0\ncatch_up = 0")
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        text.replace('interval = "15m"', 'interval = "1s"').replace("timeout = 1\n", "timeout = 5\n")
    )
    running, peak = Counter(), Counter()
    lock = threading.Lock()

    def feed(name: str, seconds: float):
        def route(handler):
            with lock:
                running[name] += 1
                peak[name] = max(peak[name], running[name])
            time.sleep(seconds)
            with lock:
                running[name] -= 1
            return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

        return route

    monitor.site.routes["/fast.xml"] = feed("fast", 0.0)
    monitor.site.routes["/slow.xml"] = feed("slow", 1.6)
    process = start(monitor, "run")
    try:
        wait_until(lambda: query(monitor, "SELECT count(*) FROM fetches WHERE source_id = 'fast'")[0][0] >= 4)
        code, seconds, out, err = stop(process, signal.SIGINT)
    finally:
        process.kill()
    assert code == 0 and seconds < 5, (code, seconds, err)
    fetches = Counter(sid for (sid,) in query(monitor, "SELECT source_id FROM fetches"))
    assert peak["slow"] == 1  # overdue while it runs, yet never two fetches of it at once
    assert (
        1 <= fetches["slow"] <= 3 and fetches["fast"] >= 4
    )  # the slow one holds the fast one back in nothing
    lines = [line for line in out.splitlines() if ": baseline," in line or ": unchanged," in line]
    assert Counter(line.split()[3].rstrip(":") for line in lines) == fetches  # one line per poll
    assert "SIGINT: stopping" in out and "Traceback" not in out + err


def test_per_host_caps_the_requests_to_a_host_across_every_sources_round(monitor):
    """Each source runs as its own round: with a round's own limit, three slow sources of one host
    were three requests to it at once under per_host = 1."""
    monitor.write(*(rss_source(name, f"/{name}.xml") for name in ("a", "b", "c")))
    schedule(monitor, "jitter = 0\nhost_spacing = 0\ncatch_up = 0\nper_host = 1")
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        text.replace('interval = "15m"', 'interval = "1s"').replace("timeout = 1\n", "timeout = 5\n")
    )
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def slow(handler):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.4)
        with lock:
            state["now"] -= 1
        return monitor.site.serve_file("/sfc/en/rss/press-releases.xml")

    for name in ("a", "b", "c"):
        monitor.site.routes[f"/{name}.xml"] = slow
    process = start(monitor, "run")
    try:
        wait_until(lambda: query(monitor, "SELECT count(DISTINCT source_id) FROM fetches")[0][0] == 3)
        code, _, _, err = stop(process, signal.SIGTERM)
    finally:
        process.kill()
    assert code == 0, err
    assert state["peak"] == 1


def test_health_exit_codes(monitor, capsys):
    monitor.write(SFC_PRESS)
    code, out, err = monitor("health", capsys=capsys)
    assert (code, out) == (1, "")
    assert err == f"unhealthy: no state database at {monitor.db} yet (policy-monitor run creates it)\n"

    monitor("run", "--once", capsys=capsys)
    code, out, err = monitor("health", capsys=capsys)
    assert code == 0 and out.startswith("healthy: last round finished ") and "expected within 30 min" in out

    with sqlite3.connect(monitor.db) as conn:  # the monitor stopped 40 minutes ago
        conn.execute("UPDATE run_state SET value = '2000-01-01T00:00:00+00:00' WHERE key = 'last_round_at'")
    code, out, err = monitor("health", capsys=capsys)
    assert (code, out) == (1, "")
    assert err.startswith("unhealthy: the last round finished ") and err.count("\n") == 1
    assert "expected within 30 min (twice the shortest interval, 15 min)" in err


def test_health_of_a_database_that_is_not_one(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor.db.parent.mkdir(parents=True)
    monitor.db.write_bytes(b"not a database, just bytes" * 100)
    code, out, err = monitor("health", capsys=capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"unhealthy: cannot read the state database {monitor.db}: ")


def test_health_of_a_database_from_before_rounds_were_recorded(monitor, capsys):
    monitor.write(SFC_PRESS)
    monitor("run", "--once", capsys=capsys)
    with sqlite3.connect(monitor.db) as conn:
        conn.execute("DROP TABLE run_state")
    code, _, err = monitor("health", capsys=capsys)
    assert code == 1 and "no round has finished on this database yet" in err
    assert query(monitor, "SELECT name FROM sqlite_master WHERE name = 'run_state'") == []  # read only


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.add(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return found


def gone(pids: set[int]) -> bool:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except (ProcessLookupError, FileNotFoundError):
            pass
    return not alive


def test_a_child_process_logs_through_the_parent_in_its_format(monitor):
    """A split round's child writes no line itself: its records reach the operator through the
    parent, as they come (not at the end of its share), as JSON lines with their fields."""
    near = [rss_source(f"near-{n}", f"/feed/{n}.xml") for n in range(150)]
    far = [rss_source(f"far-{n}", f"/feed/{n + 150}.xml").replace("{base}", "{far}") for n in range(150)]
    for n in range(300):
        monitor.site.routes[f"/feed/{n}.xml"] = lambda handler: (  # each site's share: >= 1.5 s
            time.sleep(0.1) or monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
        )
    del monitor.site.routes["/feed/299.xml"]  # far-149: a 404, logged in the child as a warning
    monitor.write(*near, *far)
    far_base = monitor.site.base_url.replace("127.0.0.1", "localhost")
    monitor.config.write_text(monitor.config.read_text(encoding="utf-8").replace("{far}", far_base))
    schedule(monitor, "per_host = 10")
    result = run_cli(
        "--config", str(monitor.config), "--db", str(monitor.db), "--log-format", "json", "run", "--once"
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr == ""
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line a JSON object
    assert any("polled by 1 child process" in line["message"] for line in lines)
    by_source = {line["source"]: line for line in lines if "source" in line}
    assert len(by_source) == 300 and by_source["far-0"]["status"] == "baseline"
    failed = by_source["far-149"]
    assert (failed["level"], failed["status"], failed["error"]) == ("warning", "error", "HTTP 404 Not Found")
    order = [line["source"] for line in lines if "source" in line]  # as the parent wrote them
    first_far = min(n for n, source in enumerate(order) if source.startswith("far-"))
    last_near = max(n for n, source in enumerate(order) if source.startswith("near-"))
    assert first_far < last_near  # the child's lines came while this process was still polling


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_round_split_over_two_processes_stops_whole_and_resumes(monitor, capsys, signum):
    """300 sources on two sites: a child process polls one of them. SIGTERM stops both within
    seconds (exit 0); SIGKILL of the parent takes the child with it, so nothing keeps writing to
    a database whose lock is gone; either way the next run finishes the round, without noise."""
    for n in range(300):
        monitor.site.routes[f"/slow/{n}.xml"] = lambda handler: (
            time.sleep(0.5) or monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
        )
    near = [rss_source(f"near-{n}", f"/slow/{n}.xml") for n in range(150)]
    far = [rss_source(f"far-{n}", f"/slow/{n + 150}.xml").replace("{base}", "{far}") for n in range(150)]
    monitor.write(*near, *far)
    far_base = monitor.site.base_url.replace("127.0.0.1", "localhost")
    monitor.config.write_text(monitor.config.read_text(encoding="utf-8").replace("{far}", far_base))
    schedule(monitor, "per_host = 10")  # a round of 7.5 s per site
    process = start(monitor, "run", "--once")
    try:
        done = "SELECT count(*) FROM fetches WHERE source_id LIKE '{}-%'"
        wait_until(
            lambda: (
                query(monitor, done.format("near"))[0][0] >= 2
                and query(monitor, done.format("far"))[0][0] >= 2
            )
        )
        children = children_of(process.pid)
        assert children  # the child polling the far site (and multiprocessing's resource tracker)
        code, seconds, out, err = stop(process, signum)
    finally:
        process.kill()
    if signum == signal.SIGTERM:
        assert code == 0 and seconds < 8, (code, seconds, err)
        assert "polled by 1 child process" in out and "Traceback" not in out + err
    wait_until(lambda: gone(children), timeout=5)
    assert query(monitor, "PRAGMA integrity_check") == [("ok",)]
    stored = query(monitor, "SELECT count(*) FROM source_state")[0][0]
    assert 4 <= stored < 300  # the round was cut short, in both processes

    restarted = run_cli("--config", str(monitor.config), "--db", str(monitor.db), "run", "--once")
    assert restarted.returncode == 0, restarted.stderr
    assert query(monitor, "SELECT count(*) FROM source_state") == [(300,)]
    assert query(monitor, "SELECT count(*) FROM changes") == [(0,)]  # a baseline, finished silently


def test_the_bot_stops_cleanly_on_sigterm_even_in_its_long_poll(monitor, telegram):
    monitor.write(SFC_PRESS)
    process = start(monitor, "bot", env=telegram_env(telegram))
    try:
        wait_until(lambda: telegram.calls_for("getUpdates"))  # in its long poll for commands
        code, seconds, out, err = stop(process, signal.SIGTERM)
    finally:
        process.kill()
    assert code == 0 and seconds < 5, (code, seconds, err)  # docker stop waits 10 s, then kills
    assert "bot: stopped" in out and "Traceback" not in err


def test_a_team_chat_refused_mid_run_keeps_its_alerts_and_takes_start(monitor, telegram):
    """The bot kicked from the team's group while `run` runs: what is found after it waits for the
    group too, and /start there (the bot added back) delivers it all, with no restart."""

    feed = {"body": (monitor.site.root / "sfc/en/rss/press-releases.xml").read_bytes()}
    monitor.site.routes["/sfc/en/rss/press-releases.xml"] = lambda h: Response(
        200, feed["body"], {"Content-Type": "application/rss+xml"}
    )
    monitor.write(SFC_PRESS)
    schedule(monitor, "jitter = 0\nhost_spacing = 0\ncatch_up = 0")
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(text.replace('interval = "15m"', 'interval = "1s"'), encoding="utf-8")
    telegram.fail_next("sendMessage", "chat_not_found", chat_id=int(GROUP))
    process = start(monitor, "run", env=telegram_env(telegram))
    try:
        wait_until(lambda: query(monitor, "SELECT count(*) FROM fetches")[0][0] >= 1)  # the baseline
        feed["body"] = (ROUND2 / "sfc/en/rss/press-releases.xml").read_bytes()
        wait_until(lambda: len(sent_to(telegram, PRIVATE)) == 1)
        feed["body"] = newer_sfc_feed(monitor)  # found after the group was refused
        wait_until(lambda: len(sent_to(telegram, PRIVATE)) == 2)
        assert sent_to(telegram, GROUP) == []
        assert query(
            monitor, f"SELECT count(*) FROM outbox WHERE chat = '{GROUP}' AND status = 'pending'"
        ) == [(2,)]
        telegram.push_command(int(GROUP), "/start")
        wait_until(lambda: len(sent_to(telegram, GROUP)) == 3)
        code, _, out, err = stop(process, signal.SIGTERM)
    finally:
        process.kill()
    subscribed, *alerts = sent_to(telegram, GROUP)
    assert "Subscribed." in subscribed
    assert [a.split("\n")[1] for a in alerts] == [a.split("\n")[1] for a in sent_to(telegram, PRIVATE)]
    assert code == 0 and "its alerts wait" in out and "Traceback" not in err


def test_stop_in_a_group_during_its_delivery_ends_it(monitor, telegram):
    """The group's 5 alerts go out at its slow pace; /stop after the first: no more follow."""
    monitor.write(*SOURCES)
    baseline = run_cli("--config", str(monitor.config), "--db", str(monitor.db), "run", "--once")
    assert baseline.returncode == 0, baseline.stderr
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(text.replace("group_interval = 0.01", "group_interval = 0.5"), encoding="utf-8")
    schedule(monitor, "jitter = 0\nhost_spacing = 0\ncatch_up = 0")
    monitor.site.root = ROUND2
    process = start(monitor, "run", "--all", env=telegram_env(telegram))
    try:
        wait_until(lambda: len(sent_to(telegram, GROUP)) >= 1)
        telegram.push_command(int(GROUP), "/stop")
        wait_until(lambda: any("stopped" in t for t in sent_to(telegram, GROUP)))
        time.sleep(1.5)  # three more of the group's paces
        code, _, _, err = stop(process, signal.SIGTERM)
    finally:
        process.kill()
    texts = sent_to(telegram, GROUP)
    after_stop = texts[next(i for i, t in enumerate(texts) if "stopped" in t) + 1 :]
    assert code == 0 and len(after_stop) <= 1, after_stop  # at most the one already on its way
    assert len(sent_to(telegram, PRIVATE)) == 5 and "Traceback" not in err
