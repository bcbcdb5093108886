"""Scraped text is untrusted and the token is secret: neither reaches a user's terminal, Telegram,
the HTML report or any file in a form that could do harm."""

from __future__ import annotations

import os
import pty
import re
import sqlite3
import subprocess
import sys

import pytest

from monitor.localsite import Response
from tests.conftest import FSTB_LISTING, ROOT, ROUND2, SFC_PRESS, TEST_SETTINGS
from tests.faults.conftest import GROUP, PRIVATE, SECRET, TOKEN, rows, sent_to, write_config
from tests.telegram_stub import TelegramStub, parse_html
from tests.test_report import CHROMIUM, browse

# --- the token -----------------------------------------------------------------------------------


def test_the_token_appears_nowhere_after_failing_sends(monitor, telegram, capsys, tmp_path):
    """Every channel a user or attacker could read, after a run with a known token through failed
    sends, Telegram errors, an unreachable API, a rejected token and --debug tracebacks."""
    write_config(monitor, SFC_PRESS, FSTB_LISTING, settings=TEST_SETTINGS)
    env = {"TELEGRAM_CHAT_IDS": f"{PRIVATE},{GROUP}"}
    seen: list[str] = []

    def cli(*args: str, api: str = telegram.base_url, token: str = TOKEN) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "monitor", "--debug", "--config", str(monitor.config)]
        full_env = {**os.environ, **env, "TELEGRAM_API_URL": api, "TELEGRAM_BOT_TOKEN": token}
        done = subprocess.run(
            [*command, "--db", str(monitor.db), *args], capture_output=True, text=True, env=full_env,
            cwd=ROOT, timeout=120,
        )  # fmt: skip
        seen.extend([done.stdout, done.stderr])
        return done

    assert cli("run", "--once").returncode == 0
    monitor.site.root = ROUND2
    telegram.fail_next("sendMessage", "server_error", chat_id=int(PRIVATE), times=None)
    telegram.fail_next("sendMessage", "chat_not_found", chat_id=int(GROUP))
    cli("run", "--once", "--all")
    telegram.clear_failures()
    telegram.fail_next("*", "reset", times=None)
    cli("bot", "--once")
    telegram.clear_failures()
    cli("bot", "--once", api=TelegramStub.refused_base_url())  # Telegram unreachable
    cli("bot", "--once", token=TOKEN[:-1] + "X")  # a token the API refuses, with --debug
    refused = cli("run", "--once", "--all", token=TOKEN[:-1] + "X")  # PTB's InvalidToken quotes the token
    assert refused.returncode == 2 and "Telegram refused the bot" in refused.stderr
    assert cli("run", "--once").returncode == 0  # finally delivered
    assert sent_to(telegram, PRIVATE), "the test must have reached a successful send"

    change_ids = [i for (i,) in rows(monitor.db, "SELECT id FROM changes")]
    assert change_ids
    cli("log")
    cli("export", "--format", "jsonl")
    cli("show", str(change_ids[0]))
    report = tmp_path / "report"
    cli("report", "--out", str(report))
    assert any("Traceback" in text for text in seen)  # --debug tracebacks were produced, and checked

    for text in seen:
        assert SECRET not in text, text[-3000:]
    for path in [*monitor.db.parent.iterdir(), *report.rglob("*.html")]:
        assert SECRET.encode() not in path.read_bytes(), path
    with sqlite3.connect(monitor.db) as conn:  # stored errors are redacted, not just absent by luck
        errors = " ".join(
            e for (e,) in conn.execute("SELECT last_error FROM outbox UNION SELECT note FROM chats")
        )
    assert "InvalidToken: The token `<token>` was rejected" in errors  # why the rows wait, redacted


# --- scraped text is untrusted ------------------------------------------------------------------

ESC = "\x1b"
HOSTILE = "\x1b[2J\x1b[31m<script>document.title='pwned'</script> Stablecoin & <b>bold</b>\u202eevil\x07"
SHOWN = "[2J[31m<script>document.title='pwned'</script> Stablecoin & <b>bold</b>evil"  # what is left
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def hostile_listing(site, title: str = HOSTILE) -> bytes:
    page = site.serve_file("/fstb/tc/press-releases.htm").body.decode("big5hkscs")
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    row = (
        f'<tr class="press-item"><td class="date">2026年8月9日</td><td class="title">'
        f'<a href="/tc/press/evil\x1b]8;;http://evil/\x07.htm">{escaped}</a></td></tr>'
    )
    return page.replace('<tr class="press-item">', row + '<tr class="press-item">', 1).encode("utf-8")


def serve_hostile(monitor, capsys) -> None:
    site = monitor.site
    plain = site.serve_file("/fstb/tc/press-releases.htm").body
    site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(200, plain, {"Content-Type": "text/html"})
    monitor.round(capsys)
    hostile = hostile_listing(site)
    site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(
        200, hostile, {"Content-Type": "text/html; charset=utf-8"}
    )


def test_scraped_text_cannot_drive_the_terminal(monitor, capsys, tmp_path):
    write_config(monitor, FSTB_LISTING, settings=TEST_SETTINGS)
    serve_hostile(monitor, capsys)
    code, alert, _ = monitor.round(capsys)
    assert code == 0 and f"NEW: {SHOWN}" in alert
    ((change_id,),) = rows(monitor.db, "SELECT id FROM changes")
    outputs = {
        "alert": alert,
        "log": monitor("log", capsys=capsys)[1],
        "show": monitor("show", str(change_id), capsys=capsys)[1],
        "check": monitor("check", "fstb-press-tc", capsys=capsys)[1],
        "export": monitor("export", capsys=capsys)[1],
        "log in a terminal": in_a_terminal(monitor, "log"),
    }
    assert "Link:      " + monitor.site.url("/tc/press/evil]8;;http://evil/.htm") in outputs["show"]
    assert "<script>document.title='pwned'</script>" in outputs["log in a terminal"]
    for name, text in outputs.items():
        assert not CONTROLS.search(
            text.replace("\x1b[", "").replace("\r", "") if "terminal" in name else text
        ), name

    soft_404 = b"<html><head><title>\x1b[31mNot Found\x1b]0;owned\x07</title></head></html>"
    monitor.site.routes["/fstb/tc/press-releases.htm"] = lambda h: Response(
        200, soft_404, {"Content-Type": "text/html"}
    )
    code, _, err = monitor.round(capsys)
    assert code == 1 and 'soft 404: HTTP 200 but the page title is "[31mNot Found]0;owned"' in err
    cli = subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(monitor.config), "--db", str(monitor.db), "run",
         "--once", "--all"], capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    logged = cli.stdout + cli.stderr  # `run` logs to stdout
    assert "soft 404" in logged and not CONTROLS.search(logged)


def in_a_terminal(monitor, *args: str) -> str:
    """The command's output as a terminal shows it (rich's table): run on a pseudo-terminal.
    Rich's own colour codes are ESC sequences too; the test strips `ESC[` before checking."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(monitor.config), "--db", str(monitor.db), *args],
        stdout=follower, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    # Rich's styling: ESC [ ... m. Remove exactly those so anything else stands out.
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace"))


def test_scraped_text_is_escaped_in_telegram(monitor, telegram, capsys):
    write_config(monitor, FSTB_LISTING, settings=TEST_SETTINGS)
    serve_hostile(monitor, capsys)
    monitor.round(capsys)
    (text,) = sent_to(telegram, PRIVATE)
    plain, entities = parse_html(text)  # Telegram's own parser accepts it
    assert SHOWN in plain and not CONTROLS.search(text)
    assert all(e["type"] in ("bold", "italic", "text_link") for e in entities)
    links = [e["url"] for e in entities if e["type"] == "text_link"]
    assert all(link.startswith("http://127.0.0.1:") for link in links)


@pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"), reason="Debian's chromium is not installed (CI installs it)"
)
def test_a_scraped_script_title_is_text_in_the_browser(monitor, capsys, tmp_path):
    write_config(monitor, FSTB_LISTING, settings=TEST_SETTINGS)
    serve_hostile(monitor, capsys)
    monitor.round(capsys)
    report = tmp_path / "report"
    assert monitor("report", "--out", str(report), capsys=capsys)[0] == 0
    ((change_id,),) = rows(monitor.db, "SELECT id FROM changes")
    page = browse(report / "changes" / f"{change_id}.html", tmp_path)  # scripts run in there
    assert page.xpath("//h1")[0].text_content() == f"#{change_id} {SHOWN}"
    assert page.findtext(".//title") == f"#{change_id} {SHOWN}"  # not 'pwned': the script never ran
    assert not page.xpath("//body//script[contains(., 'pwned')] | //b[.='bold']")
