"""Telegram delivery end to end: the real python-telegram-bot client against a local Bot API
stand-in, the local regulator site over rounds, and a real SQLite file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from monitor import channel as monitor_channel
from monitor.localsite import Response
from monitor.store import Store
from tests.conftest import FSTB_LISTING, REGISTER, ROUND2, SFC_PRESS, rss_source, run_cli
from tests.telegram_stub import TelegramStub, parse_html, utf16_len

TOKEN = "123456:SECRET-token-never-logged"
PRIVATE, GROUP = "1001", "-2002"
HKMA_PRESS = rss_source("hkma-press-en", "/hkma/eng/rss/press-release.xml")
SFC_CIRCULARS = rss_source("sfc-circulars-en", "/sfc/en/rss/circulars.xml")
SOURCES = (SFC_PRESS, SFC_CIRCULARS, HKMA_PRESS, FSTB_LISTING, REGISTER)  # round 2: 5 alerts


@pytest.fixture
def telegram(monkeypatch):
    with TelegramStub(token=TOKEN) as stub:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{PRIVATE},{GROUP}")
        monkeypatch.setenv("TELEGRAM_API_URL", stub.base_url)
        yield stub


def sent_to(stub: TelegramStub, chat: str) -> list[str]:
    return [m["text"] for m in stub.sent if str(m["chat_id"]) == chat]


def pending(monitor) -> int:
    with sqlite3.connect(monitor.db) as conn:
        return conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]


def test_each_alert_reaches_each_chat_exactly_once(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    assert monitor.round(capsys)[0] == 0
    assert telegram.sent == []  # the baseline is silent

    code, out, _ = monitor.round(capsys, ROUND2)
    assert (code, out) == (0, "")  # with a token, alerts go to Telegram, not the terminal
    for chat in (PRIVATE, GROUP):
        texts = sent_to(telegram, chat)
        assert len(texts) == 5
        assert any(
            "SFC and HKMA issue joint circular on distribution of licensed stablecoins" in t for t in texts
        )
        assert any("財經事務及庫務局歡迎《穩定幣條例》修訂生效" in t for t in texts)
    first = telegram.calls_for("sendMessage")[0].params
    assert first["parse_mode"] == "HTML"
    assert first["link_preview_options"]["is_disabled"] is True

    monitor.round(capsys)
    assert len(telegram.sent) == 10 and pending(monitor) == 0


def test_rate_limited_sends_still_arrive_exactly_once(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "retry_after", chat_id=int(GROUP), retry_after=1)
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, PRIVATE)) == 5 and len(sent_to(telegram, GROUP)) == 5
    assert pending(monitor) == 0


def test_a_long_retry_after_is_kept_by_the_next_run_under_cron(monitor, telegram, capsys):
    """`run --once` from cron: a new process each time, which must not hit the chat's flood limit
    again before Telegram's Retry-After is over."""
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "retry_after", chat_id=int(GROUP), retry_after=120)
    _, _, err = monitor.round(capsys, ROUND2)
    assert "rate limited for 120 s" in err and sent_to(telegram, GROUP) == []
    calls = len(telegram.calls_for("sendMessage"))
    _, _, err = monitor("run", "--once", capsys=capsys)  # the next cron run, a minute later
    assert "rate limited for 120 s more; alerts stay pending" in err or "rate limited for 119 s more" in err
    assert len(telegram.calls_for("sendMessage")) == calls and pending(monitor) == 1
    with sqlite3.connect(monitor.db) as conn:  # two minutes later
        conn.execute("UPDATE bot_state SET value = '2000-01-01T00:00:00+00:00' WHERE key LIKE 'retry_after%'")
    monitor("run", "--once", capsys=capsys)
    assert len(sent_to(telegram, GROUP)) == 1 and pending(monitor) == 0


def test_a_chat_that_answers_429_again_and_again_waits_for_the_next_delivery(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "retry_after", chat_id=int(GROUP), retry_after=1, times=None)
    started = time.monotonic()
    code, _, err = monitor.round(capsys, ROUND2)
    assert code == 0 and time.monotonic() - started < 15  # not one 1-s wait after another, forever
    assert len(sent_to(telegram, PRIVATE)) == 5 and sent_to(telegram, GROUP) == []
    assert "rate limited for 1 s" in err and pending(monitor) == 5
    telegram.clear_failures()
    monitor.round(capsys)
    assert len(sent_to(telegram, GROUP)) == 5 and pending(monitor) == 0


def test_telegram_down_for_a_round_delays_alerts_and_loses_none(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.down()
    code, _, err = monitor.round(capsys, ROUND2)
    assert code == 0  # the sources were fine; Telegram's outage does not fail the round
    assert pending(monitor) == 10 and telegram.sent == []
    assert "telegram" in err.lower()
    with sqlite3.connect(monitor.db) as conn:  # the outbox says why its rows wait
        tried = conn.execute("SELECT DISTINCT attempts, last_error FROM outbox").fetchall()
    assert len(tried) == 1 and tried[0][0] == 1 and tried[0][1].startswith("NetworkError: ")
    telegram.up()
    monitor.round(capsys)
    assert len(sent_to(telegram, PRIVATE)) == 5 and len(sent_to(telegram, GROUP)) == 5
    monitor.round(capsys)
    assert len(telegram.sent) == 10 and pending(monitor) == 0


def test_alerts_queued_before_a_crash_are_sent_on_restart(monitor, telegram, capsys, monkeypatch):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)

    async def crash(self, store):
        raise KeyboardInterrupt  # killed right after the round's commit, before sending

    with monkeypatch.context() as patch:
        patch.setattr(monitor_channel.Channel, "deliver", crash)
        monitor.round(capsys, ROUND2)
    assert pending(monitor) == 2 and telegram.sent == []
    monitor("run", "--once", capsys=capsys)  # restarted: nothing is due, the outbox is sent
    assert len(telegram.sent) == 2 and pending(monitor) == 0


def test_hostile_and_chinese_titles_render_as_valid_html(monitor, telegram, capsys):
    feed = (monitor.site.root / "sfc/en/rss/press-releases.xml").read_text(encoding="utf-8")
    hostile = feed.replace(
        "<title>Market Misconduct Tribunal",
        "<title>Stablecoin &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; 穩定幣 &lt;script&gt;x",
        1,
    )
    monitor.site.routes["/hostile.xml"] = lambda h: Response(
        200, feed.encode(), {"Content-Type": "application/rss+xml"}
    )
    monitor.write(rss_source("sfc-press-en", "/hostile.xml"))
    monitor.round(capsys)
    monitor.site.routes["/hostile.xml"] = lambda h: Response(
        200, hostile.encode(), {"Content-Type": "application/rss+xml"}
    )
    monitor.round(capsys)
    monitor.round(capsys)  # a retitle is told when seen again
    (text,) = sent_to(telegram, PRIVATE)
    assert "Stablecoin &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; 穩定幣 &lt;script&gt;x" in text or (
        'Stablecoin &lt;b&gt;bold&lt;/b&gt; &amp; "quoted" 穩定幣 &lt;script&gt;x' in text
    )
    plain, _ = parse_html(text)
    assert 'Stablecoin <b>bold</b> & "quoted" 穩定幣 <script>x' in plain


def _many_releases(monitor, capsys, count: int) -> None:
    """An FSTB listing with one release, baselined; then `count` releases on it."""

    def listing(count: int) -> bytes:
        rows = "".join(
            f'<tr class="press-item"><td class="date">2026年8月{1 + i % 28}日</td><td class="title">'
            f'<a href="/tc/press/{i}.htm">財經事務及庫務局就穩定幣發牌制度發表第{i}號公告 &amp; 虛擬資產交易平台監管安排的詳細說明文件</a></td></tr>'
            for i in range(count)
        )
        return f'<html><body><table class="press-list">{rows}</table></body></html>'.encode()

    monitor.site.routes["/many.htm"] = lambda h: Response(
        200, listing(1), {"Content-Type": "text/html; charset=utf-8"}
    )
    monitor.write(FSTB_LISTING.replace("/fstb/tc/press-releases.htm", "/many.htm"))
    monitor.round(capsys)
    monitor.site.routes["/many.htm"] = lambda h: Response(
        200, listing(count), {"Content-Type": "text/html; charset=utf-8"}
    )


def test_a_long_digest_is_split_into_valid_parts(monitor, telegram, capsys):
    _many_releases(monitor, capsys, 50)
    monitor.round(capsys)
    parts = sent_to(telegram, PRIVATE)
    assert len(parts) >= 2
    plains = [parse_html(part)[0] for part in parts]  # each part is valid HTML on its own
    assert all(utf16_len(plain) <= 4096 for plain in plains)
    assert plains[0].startswith(f"(1/{len(parts)})")
    everything = "\n".join(plains)
    assert all(f"第{i}號公告" in everything for i in range(1, 50))  # nothing lost between parts
    assert pending(monitor) == 0


def test_a_long_digest_cut_off_by_a_failing_part_goes_on_from_that_part(monitor, telegram, capsys):
    _many_releases(monitor, capsys, 51)
    second_part = lambda params: params.get("text", "").startswith("(2/")  # noqa: E731
    telegram.fail_next("sendMessage", "bad_gateway", chat_id=PRIVATE, times=3, when=second_part)
    monitor.round(capsys)  # part 1 reaches the chat; part 2 fails, with its retries
    numbers = [p.split(")", 1)[0] + ")" for p in sent_to(telegram, GROUP)]  # the other chat has them all
    assert len(numbers) >= 2 and numbers[0] == f"(1/{len(numbers)})"
    assert [p[: len(numbers[0])] for p in sent_to(telegram, PRIVATE)] == numbers[:1]
    assert pending(monitor) == 50
    monitor.round(capsys)  # nothing new on the listing: the digest goes on from part 2
    parts = sent_to(telegram, PRIVATE)
    assert [p[: len(numbers[0])] for p in parts] == numbers
    assert parts == sent_to(telegram, GROUP)  # the very parts the other chat got at once
    assert pending(monitor) == 0
    assert rows_of(monitor.db, "SELECT count(*) FROM outbox_progress") == [(0,)]


def test_a_chat_that_stops_in_the_middle_of_a_long_digest_is_not_sent_the_rest(monitor, telegram, capsys):
    _many_releases(monitor, capsys, 51)
    second_part = lambda params: params.get("text", "").startswith("(2/")  # noqa: E731
    telegram.fail_next("sendMessage", "bad_gateway", chat_id=PRIVATE, times=6, when=second_part)
    monitor.round(capsys)
    assert rows_of(monitor.db, "SELECT count(*) FROM outbox_progress") == [(1,)]
    telegram.push_command(int(PRIVATE), "/stop")
    monitor("bot", "--once", capsys=capsys)  # part 2 fails again; then /stop is read
    monitor.round(capsys)
    sent = sent_to(telegram, PRIVATE)
    assert len(sent) == 2 and sent[0].startswith("(1/") and "stopped" in sent[1]
    assert rows_of(monitor.db, "SELECT count(*) FROM outbox_progress") == [(0,)]


def test_a_long_digest_cut_off_by_a_group_s_migration_goes_whole_to_the_new_group(monitor, telegram, capsys):
    _many_releases(monitor, capsys, 51)
    second_part = lambda params: params.get("text", "").startswith("(2/")  # noqa: E731
    telegram.fail_next(
        "sendMessage", "migrated", chat_id=int(GROUP), migrate_to_chat_id=-1009999, when=second_part
    )
    monitor.round(capsys)
    parts = sent_to(telegram, PRIVATE)
    assert len(parts) >= 2 and [p[:3] for p in sent_to(telegram, GROUP)] == ["(1/"]
    assert sent_to(telegram, "-1009999") == parts  # the new supergroup has the whole digest
    assert pending(monitor) == 0 and rows_of(monitor.db, "SELECT count(*) FROM outbox_progress") == [(0,)]


def test_subscribe_narrows_what_a_chat_receives(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.push_command(int(PRIVATE), "/subscribe e-hkd")
    assert monitor("bot", "--once", capsys=capsys)[0] == 0
    assert "This chat now receives: e-hkd" in sent_to(telegram, PRIVATE)[-1]
    monitor.round(capsys, ROUND2)
    alerts = sent_to(telegram, PRIVATE)[1:]
    assert len(alerts) == 1 and "Project e-HKD+" in alerts[0]
    assert len(sent_to(telegram, GROUP)) == 5
    assert [c.params["commands"] for c in telegram.calls_for("setMyCommands")]


def test_status_and_recent_answer(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    telegram.push_command(int(GROUP), "/status")
    telegram.push_command(int(GROUP), "/recent 2")
    monitor("bot", "--once", capsys=capsys)
    status, recent = sent_to(telegram, GROUP)[-2:]
    assert "✅ sfc-press-en: last success" in status and "hkma-stablecoin-register" in status
    assert recent.startswith("<b>2 latest alerts</b>") and recent.count("<a href=") == 2


def test_blocked_chat_is_deactivated_and_others_still_receive(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "blocked", chat_id=int(GROUP))
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, PRIVATE)) == 5 and sent_to(telegram, GROUP) == []
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT active FROM chats WHERE chat_id = ?", [GROUP]).fetchone() == (0,)
    assert pending(monitor) == 5  # the group's alerts wait: it is in TELEGRAM_CHAT_IDS
    monitor.round(capsys)  # the next start re-enables it (the operator unblocked the bot): they arrive
    assert len(sent_to(telegram, GROUP)) == 5 and pending(monitor) == 0


def test_a_team_chat_telegram_refused_is_tried_again_within_the_hour(tmp_path):
    """In a long-running `run` (no start to re-enable it): a team chat Telegram refused is still
    queued for, tried again once its hour is over, and subscribed as before once a message arrives;
    someone's own chat that blocked the bot is not."""
    store = Store.open(tmp_path / "monitor.db")
    store.sync_env_chats([GROUP])
    store.subscribe("3003")
    for chat in (GROUP, "3003"):
        store.mark_unreachable(chat, "Forbidden: bot was kicked from the group chat")
    assert list(store.recipients()) == [GROUP]  # alerts are queued for the team's group only
    store.queue_notice("a source failed", [GROUP, "3003"])
    assert store.pending_chats() == []  # refused a moment ago
    store.db.execute("UPDATE chats SET unreachable_at = '2000-01-01T00:00:00+00:00'")
    assert store.pending_chats() == [GROUP]
    assert GROUP in store.env_chats()  # the team's still: /start there is taken
    store.migrate_chat(GROUP, "-1009999")  # the retry was answered with the group's new id
    assert "-1009999" in store.recipients() and "-1009999" in store.env_chats()
    store.queue_notice("another source failed", ["-1009999"])
    assert store.pending_chats() == ["-1009999"]
    store.reached(GROUP)
    store.reached("3003")
    assert rows_of(tmp_path / "monitor.db", "SELECT chat_id, active, note FROM chats ORDER BY chat_id") == [
        ("-1009999", 1, "migrated from -2002"),
        ("-2002", 0, "migrated to -1009999"),
        ("3003", 0, "unreachable: Forbidden: bot was kicked from the group chat"),
    ]


def test_a_chat_taken_out_of_the_list_gets_nothing_more(monitor, telegram, capsys, monkeypatch):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    telegram.down()
    monitor.round(capsys, ROUND2)  # 5 alerts wait for each chat
    telegram.up()
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", PRIVATE)  # the operator removes the group
    monitor.round(capsys)
    assert len(sent_to(telegram, PRIVATE)) == 5 and sent_to(telegram, GROUP) == []
    assert pending(monitor) == 5  # the group's wait: a mistyped id must not lose them
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{PRIVATE},{GROUP}")  # put back
    monitor.round(capsys)
    assert len(sent_to(telegram, GROUP)) == 5 and pending(monitor) == 0


def test_a_migrated_group_keeps_its_place_in_the_list_after_a_restart(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "migrated", chat_id=int(GROUP), migrate_to_chat_id=-1009999)
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, "-1009999")) == 1
    monitor.round(capsys)  # a restart with TELEGRAM_CHAT_IDS still naming the old id
    with sqlite3.connect(monitor.db) as conn:
        chats = dict(conn.execute("SELECT chat_id, active FROM chats").fetchall())
    assert chats["-1009999"] == 1 and chats[GROUP] == 0  # the supergroup stays the team's chat
    calls = len(telegram.calls_for("sendMessage"))
    monitor.site.routes["/sfc/en/rss/press-releases.xml"] = lambda h: Response(
        200, newer_sfc_feed(monitor), {"Content-Type": "application/rss+xml"}
    )
    monitor.round(capsys)  # the next alert goes straight to the supergroup, not via the old id
    assert len(sent_to(telegram, "-1009999")) == 2
    sent = sorted(c.params["chat_id"] for c in telegram.calls_for("sendMessage")[calls:])
    assert sent == [-1009999, int(PRIVATE)]  # one send each: none to the old id


def test_unparseable_entities_are_resent_as_plain_text(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "parse_entities", chat_id=int(PRIVATE))
    monitor.round(capsys, ROUND2)
    (text,) = sent_to(telegram, PRIVATE)
    assert "SFC and HKMA issue joint circular" in text and "<b>" not in text
    assert telegram.calls_for("sendMessage")[-1].params.get("parse_mode") in (None, "")


def test_migrated_group_gets_its_alerts_at_the_new_id(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "migrated", chat_id=int(GROUP), migrate_to_chat_id=-1009999)
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, "-1009999")) == 1 and sent_to(telegram, GROUP) == []


def test_one_health_alert_after_three_failures_and_one_on_recovery(monitor, telegram, capsys):
    down = {"on": True}
    feed = monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
    monitor.site.routes["/flaky.xml"] = lambda h: Response(503) if down["on"] else feed
    monitor.write(rss_source("sfc-press-en", "/flaky.xml"))
    for _ in range(4):
        assert monitor.round(capsys)[0] == 1
    notices = [t for t in sent_to(telegram, PRIVATE) if "Source health" in t]
    assert len(notices) == 1 and "sfc-press-en has failed 3 times in a row: HTTP 503" in notices[0]
    down["on"] = False
    monitor.round(capsys)
    notices = [t for t in sent_to(telegram, PRIVATE) if "Source health" in t]
    assert len(notices) == 2 and "recovered after 4 failed attempts" in notices[1]


def test_a_regulator_down_is_one_health_message_not_one_per_source(monitor, telegram, capsys):
    down = {"on": True}
    feed = monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
    names = ("sfc-press-en", "sfc-circulars-en", "sfc-news-en")
    for name in names:
        monitor.site.routes[f"/{name}.xml"] = lambda h: Response(503) if down["on"] else feed
    monitor.write(*(rss_source(name, f"/{name}.xml") for name in names))
    for _ in range(3):
        monitor.round(capsys)
    (notice,) = [t for t in sent_to(telegram, PRIVATE) if "Source health" in t]
    assert all(f"Source {name} has failed 3 times in a row" in notice for name in names)
    down["on"] = False
    monitor.round(capsys)
    notices = [t for t in sent_to(telegram, PRIVATE) if "Source health" in t]
    assert len(notices) == 2 and notices[1].count("has recovered after 3 failed attempts") == 3


def test_source_health_notices_follow_the_ops_group_to_its_new_id(monitor, telegram, capsys):
    down = {"on": True}
    feed = monitor.site.serve_file("/sfc/en/rss/press-releases.xml")
    monitor.site.routes["/flaky.xml"] = lambda h: Response(503) if down["on"] else feed
    monitor.write(rss_source("sfc-press-en", "/flaky.xml"))
    config = monitor.config.read_text().replace("[telegram]\n", f'[telegram]\nops_chat = "{GROUP}"\n')
    monitor.config.write_text(config)
    telegram.fail_next("sendMessage", "migrated", chat_id=int(GROUP), migrate_to_chat_id=-1009999)
    for _ in range(3):
        monitor.round(capsys)
    down["on"] = False
    monitor.round(capsys)  # the recovery notice: straight to the supergroup
    notices = sent_to(telegram, "-1009999")
    assert len(notices) == 2 and "failed 3 times in a row" in notices[0] and "recovered" in notices[1]
    assert pending(monitor) == 0


def test_the_token_never_reaches_logs_or_the_database(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.down()
    _, out, err = monitor.round(capsys, ROUND2)
    telegram.up()
    _, out2, err2 = monitor("--debug", "run", "--once", capsys=capsys)
    assert TOKEN not in out + err + out2 + err2
    for path in monitor.db.parent.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path


def test_dry_run_never_sends(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.site.root = ROUND2
    code, out, _ = monitor("run", "--once", "--dry-run", "--all", capsys=capsys)
    assert code == 0 and "NEW: SFC and HKMA issue joint circular" in out and telegram.sent == []


def _cli_env(stub: TelegramStub) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_CHAT_IDS": f"{PRIVATE},{GROUP}",
        "TELEGRAM_API_URL": stub.base_url,
    }


def _start(monitor, *args: str, env: dict[str, str]) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "monitor",
        "--config",
        str(monitor.config),
        "--db",
        str(monitor.db),
        *args,
    ]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_process_killed_while_sending_delivers_everything_on_restart(monitor, telegram, capsys):
    monitor.write(*SOURCES)
    monitor.round(capsys)
    monitor.site.root = ROUND2
    telegram.fail_next("sendMessage", "hang", times=2, seconds=30)  # each chat's first send hangs
    process = _start(monitor, "run", "--once", "--all", env=_cli_env(telegram))
    deadline = time.monotonic() + 20
    while len(telegram.calls_for("sendMessage")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # both chats' first sends are in flight: the round is committed
    process.kill()  # SIGKILL: no cleanup of any kind
    process.wait(timeout=10)
    assert pending(monitor) == 10  # 5 alerts for each of the 2 subscribed chats, all committed
    telegram.clear_failures()
    result = run_cli(
        "--config", str(monitor.config), "--db", str(monitor.db), "run", "--once", env=_cli_env(telegram)
    )
    assert result.returncode == 0, result.stderr
    assert len(sent_to(telegram, PRIVATE)) == 5 and len(sent_to(telegram, GROUP)) == 5
    assert pending(monitor) == 0
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_long_running_run_answers_commands_and_sends_alerts(monitor, telegram):
    monitor.write(SFC_PRESS)
    admin = monitor.config.read_text().replace("[telegram]\n", "[telegram]\nadmins = [3003]\n")
    monitor.config.write_text(admin)  # 3003 is not in TELEGRAM_CHAT_IDS: /start needs an admin
    process = _start(monitor, "run", env=_cli_env(telegram))
    try:
        telegram.wait_for_calls("setMyCommands", 1, timeout=20)
        telegram.push_command(3003, "/start")
        telegram.wait_sent(1, timeout=20)
        assert "Subscribed." in sent_to(telegram, "3003")[0]
        telegram.push_command(3003, "/topics")
        telegram.push_command(3003, "/help")
        telegram.push_command(3003, "/stop")
        telegram.wait_sent(4, timeout=20)
        topics, help_text, stopped = sent_to(telegram, "3003")[1:4]
        assert "✅ stablecoin" in topics and "/subscribe" in help_text and "stopped" in stopped
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in process.stderr.read()


def test_a_command_menu_refused_at_start_by_an_outage_is_set_once_telegram_answers(monitor, telegram):
    monitor.write(SFC_PRESS)
    telegram.fail_next("setMyCommands", "bad_gateway")  # Telegram's proxy down for the first call
    process = _start(monitor, "bot", env=_cli_env(telegram))
    try:
        telegram.push_command(int(PRIVATE), "/help")
        telegram.wait_sent(1, timeout=20)
        assert [c.status for c in telegram.calls_for("setMyCommands")] == [502, 200]
        assert "/subscribe" in sent_to(telegram, PRIVATE)[0]
    finally:
        process.terminate()
        process.wait(timeout=20)
    out = process.stdout.read()
    assert "telegram unreachable at start (NetworkError): alerts will wait" in out
    assert "Traceback" not in out + process.stderr.read()


def _deliver_after_an_outage(monitor, telegram, capsys, *sources: str, telegram_settings: str = "") -> None:
    """Round 2's alerts are held back by a Telegram outage longer than delayed_after (1 s), then sent."""
    monitor.write(*sources)
    settings = monitor.config.read_text().replace('delayed_after = "1h"', 'delayed_after = "1s"')
    monitor.config.write_text(settings.replace("[telegram]\n", "[telegram]\n" + telegram_settings))
    monitor.round(capsys)
    telegram.down()
    monitor.round(capsys, ROUND2)
    time.sleep(1.2)
    telegram.up()
    monitor("run", "--once", capsys=capsys)


def test_alerts_held_back_longer_than_delayed_after_say_so(monitor, telegram, capsys):
    _deliver_after_an_outage(monitor, telegram, capsys, SFC_PRESS)
    (text,) = sent_to(telegram, PRIVATE)
    assert "Delayed: detected" in text and "SFC and HKMA issue joint circular" in text


def test_review_buttons_record_the_telegram_user(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    sent = telegram.calls_for("sendMessage")[0].params
    buttons = sent["reply_markup"]["inline_keyboard"][0]
    assert [b["text"] for b in buttons] == ["Reviewed", "Dismiss", "Escalate"]
    escalate = buttons[2]["callback_data"]
    telegram.push_callback_query(int(PRIVATE), escalate, user_id=77)
    telegram.push_callback_query(int(PRIVATE), escalate, user_id=77)  # pressed twice
    telegram.push_callback_query(4004, buttons[0]["callback_data"], user_id=88)  # an unsubscribed chat
    monitor("bot", "--once", capsys=capsys)
    answers = [c.params.get("text") for c in telegram.calls_for("answerCallbackQuery")]
    change_id = escalate.split(":")[1]
    assert answers == [
        f"Change {change_id} marked escalated.",
        f"change {change_id} is escalated: it can become reviewed, dismissed, not escalated",
        "Only the team's chats (TELEGRAM_CHAT_IDS) and [telegram] admins can review alerts.",
    ]
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT state, by FROM reviews").fetchall() == [("escalated", "telegram:@user77")]


def test_a_review_made_on_the_command_line_shows_under_the_alert_in_every_chat(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    alerts = {str(m["chat_id"]): m["message_id"] for m in telegram.sent}
    change_id = telegram.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    assert monitor("review", change_id, "--state", "escalated", "--by", "amy", capsys=capsys)[0] == 0
    telegram.down()
    monitor("bot", "--once", capsys=capsys)  # Telegram unreachable: the buttons wait
    telegram.up()
    monitor("run", "--once", capsys=capsys)  # the next cron run
    edits = {str(c.params["chat_id"]): c.params for c in telegram.calls_for("editMessageReplyMarkup")}
    assert {chat: edit["message_id"] for chat, edit in edits.items()} == alerts
    for edit in edits.values():
        labels = [[b["text"] for b in row] for row in edit["reply_markup"]["inline_keyboard"]]
        assert labels == [["⚠️ Escalated by amy"], ["Reviewed", "Dismiss"]]
    monitor("run", "--once", capsys=capsys)
    assert len(telegram.calls_for("editMessageReplyMarkup")) == 2  # drawn once


def test_an_alert_that_reaches_a_chat_after_its_review_shows_the_review(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "retry_after", chat_id=int(GROUP), retry_after=600)
    monitor.round(capsys, ROUND2)  # the group waits; the private chat has the alert
    change_id = telegram.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    monitor("review", change_id, "--state", "dismissed", "--by", "amy", capsys=capsys)
    with sqlite3.connect(monitor.db) as conn:  # ten minutes later
        conn.execute("UPDATE bot_state SET value = '2000-01-01T00:00:00+00:00' WHERE key LIKE 'retry_after%'")
    monitor("run", "--once", capsys=capsys)
    (group_alert,) = [m for m in telegram.sent if str(m["chat_id"]) == GROUP]
    edited = {
        (str(c.params["chat_id"]), c.params["message_id"])
        for c in telegram.calls_for("editMessageReplyMarkup")
    }
    assert edited == {(GROUP, group_alert["message_id"]), (PRIVATE, telegram.sent[0]["message_id"])}


def test_a_message_in_a_group_that_became_a_supergroup_does_not_stop_the_others_buttons(
    monitor, telegram, capsys
):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)
    change_id = telegram.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1]
    monitor("review", change_id, "--state", "reviewed", "--by", "amy", capsys=capsys)
    telegram.fail_next("editMessageReplyMarkup", "migrated", chat_id=int(GROUP), times=None)
    for _ in range(2):
        monitor("run", "--once", capsys=capsys)
    tried = [str(c.params["chat_id"]) for c in telegram.calls_for("editMessageReplyMarkup")]
    assert sorted(tried) == [GROUP, PRIVATE]  # each once: the group's is given up, not tried forever


def test_a_configured_chat_that_failed_once_is_enabled_again_at_the_next_start(monitor, telegram, capsys):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "blocked", chat_id=int(GROUP))  # e.g. the bot lost its rights
    monitor.round(capsys, ROUND2)
    assert sent_to(telegram, GROUP) == []
    monitor.site.root = monitor.site.root.parent / "round1"  # the next release arrives
    monitor.round(capsys)
    monitor.round(capsys, ROUND2)  # the operator fixed the rights; the chat is in TELEGRAM_CHAT_IDS
    assert len(sent_to(telegram, GROUP)) == 0 or "joint circular" in sent_to(telegram, GROUP)[-1]
    with sqlite3.connect(monitor.db) as conn:
        assert conn.execute("SELECT active FROM chats WHERE chat_id = ?", [GROUP]).fetchone() == (1,)


def test_migration_to_an_already_subscribed_id_sends_once(monitor, telegram, capsys, monkeypatch):
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{PRIVATE},{GROUP},-1009999")
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    telegram.fail_next("sendMessage", "migrated", chat_id=int(GROUP), migrate_to_chat_id=-1009999)
    code, _, _ = monitor.round(capsys, ROUND2)
    assert code == 0
    assert len(sent_to(telegram, "-1009999")) == 1 and len(sent_to(telegram, PRIVATE)) == 1
    assert pending(monitor) == 0


def test_a_wrong_token_is_a_configuration_error(monitor, telegram, capsys, monkeypatch):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong")
    code, _, err = monitor.round(capsys, ROUND2)
    assert code == 2 and "Telegram refused the bot: check TELEGRAM_BOT_TOKEN and TELEGRAM_API_URL" in err
    assert pending(monitor) == 2 and "999:wrong" not in err


def test_a_second_process_on_the_same_database_refuses(monitor, telegram):
    monitor.write(SFC_PRESS)
    first = _start(monitor, "run", env=_cli_env(telegram))
    try:
        telegram.wait_for_calls("setMyCommands", 1, timeout=20)
        second = run_cli(
            "--config", str(monitor.config), "--db", str(monitor.db), "bot", "--once", env=_cli_env(telegram)
        )
        assert second.returncode == 2
        assert f"error: {monitor.db} is in use by policy-monitor (pid {first.pid})" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=20)
    after = run_cli(
        "--config", str(monitor.config), "--db", str(monitor.db), "bot", "--once", env=_cli_env(telegram)
    )
    assert after.returncode == 0, after.stderr  # the lock went with the process


def test_a_digest_of_delayed_alerts_says_so(monitor, telegram, capsys):
    _deliver_after_an_outage(monitor, telegram, capsys, *SOURCES, telegram_settings="digest_after = 2\n")
    (digest,) = sent_to(telegram, PRIVATE)
    assert digest.count("<a href=") == 5 and "Delayed: detected from " in digest


def test_a_chat_taken_out_of_telegram_chat_ids_stops_receiving(monitor, telegram, capsys, monkeypatch):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", PRIVATE)
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, PRIVATE)) == 1 and sent_to(telegram, GROUP) == []


def refuse_always(telegram: TelegramStub, chat: str, description: str, when=None) -> None:
    """Telegram answering 400 `description` to every sendMessage to `chat` (that `when` matches)."""
    telegram.fail_next(
        "sendMessage", "custom", chat_id=int(chat), times=None, description=description, when=when
    )


def test_a_message_whose_buttons_telegram_refuses_goes_without_them_and_the_chat_goes_on(
    monitor, telegram, capsys
):
    """A 400 about one message (here its review buttons), answered the same at every retry, must not
    hold back that alert or the ones after it: the chat gets them all, as HTML with their links,
    without the buttons."""
    monitor.write(*SOURCES)
    monitor.round(capsys)
    refuse_always(telegram, PRIVATE, "Bad Request: BUTTON_DATA_INVALID", when=lambda p: "reply_markup" in p)
    _, _, err = monitor.round(capsys, ROUND2)
    private = [m for m in telegram.sent if str(m["chat_id"]) == PRIVATE]
    assert len(private) == 5 and len(sent_to(telegram, GROUP)) == 5
    assert all(m["parse_mode"] == "HTML" and "reply_markup" not in m for m in private)
    circular = next(m["text"] for m in private if "joint circular on distribution" in m["text"])
    assert "SFC and HKMA issue joint circular on distribution of licensed stablecoins" in circular
    assert '<a href="https://' in circular  # the link to the release is kept
    assert "1001: refused (Button_data_invalid); sending it again in a plainer form" in err
    assert pending(monitor) == 0


@pytest.mark.parametrize(
    "refusal",
    [
        "Bad Request: not enough rights to send text messages to the chat",
        "Bad Request: PEER_ID_INVALID",
    ],
)
def test_a_chat_the_bot_may_not_write_to_keeps_its_alerts_until_it_may(monitor, telegram, capsys, refusal):
    monitor.write(SFC_PRESS)
    monitor.round(capsys)
    refuse_always(telegram, GROUP, refusal)
    monitor.round(capsys, ROUND2)
    assert sent_to(telegram, GROUP) == [] and pending(monitor) == 1
    assert len(telegram.calls_for("sendMessage")) == 2  # one to each chat: no retry in another form
    telegram.clear_failures()  # an admin gave the bot its rights back
    monitor.round(capsys, ROUND2)
    assert len(sent_to(telegram, GROUP)) == 1 and pending(monitor) == 0


def test_a_token_without_any_chat_is_refused_before_a_round_loses_its_alerts(
    monitor, telegram, capsys, monkeypatch
):
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", "")
    monitor.write(*SOURCES)
    code, out, err = monitor.round(capsys)
    assert code == 2 and out == ""
    assert "TELEGRAM_BOT_TOKEN is set but no chat can receive alerts: set TELEGRAM_CHAT_IDS" in err
    assert telegram.sent == [] and TOKEN not in err
    assert not monitor.db.exists() or rows_of(monitor.db, "SELECT count(*) FROM fetches") == [(0,)]


def rows_of(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_a_groups_slow_pace_does_not_slow_a_private_chat():
    """~20/min to a group, ~1/s to a private chat, ~30/s overall: each chat at its own pace."""
    from monitor.models import TelegramSettings
    from monitor.telegram_pace import RateLimiter

    async def sends() -> dict[str, list[float]]:
        limiter = RateLimiter(
            TelegramSettings(private_interval=0.1, group_interval=0.6, global_interval=0.01)
        )
        loop, times = asyncio.get_running_loop(), {PRIVATE: [], GROUP: []}
        start = loop.time()

        async def chat(chat_id: str, count: int) -> None:
            for _ in range(count):
                await limiter.wait(chat_id)
                times[chat_id].append(loop.time() - start)

        await asyncio.gather(chat(GROUP, 2), chat(PRIVATE, 4))
        return times

    times = asyncio.run(sends())
    assert times[GROUP][1] >= 0.6  # the group's own pace holds
    assert times[PRIVATE][-1] < 1.0  # 4 private sends 0.1 s apart (0.3 s), not 0.6 s apart (1.8 s)


def newer_sfc_feed(monitor) -> bytes:
    """Round 2's SFC press feed with one more stablecoin release on top."""
    feed = (ROUND2 / "sfc/en/rss/press-releases.xml").read_bytes()
    item = (
        b"<item><title>SFC reminds investors of licensed stablecoin issuers</title>"
        b"<link>https://apps.sfc.hk/edistributionWeb/gateway/EN/news-and-announcements/news/doc?refNo=26PR140</link>"
        b'<guid isPermaLink="false">26PR140</guid><pubDate>Tue, 04 Aug 2026 10:00:00 +0800</pubDate></item>'
    )
    return feed.replace(b"<item>", item + b"<item>", 1)
