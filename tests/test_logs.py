"""Log lines: one per source per round, on stdout for `run`, as text or JSON; never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import os
import sys

from monitor.arguments import build_parser
from monitor.childlogs import ToParent, records_from_children
from monitor.logs import TEXT_FORMAT, JsonFormatter, OneLineFormatter, Redacting, configure, redact
from tests.conftest import SFC_PRESS, rss_source, run_cli
from tests.telegram_stub import TelegramStub

TOKEN = "123456:SECRET-token-never-logged"


def test_json_log_lines_one_per_source_and_no_secret(monitor):
    monitor.write(SFC_PRESS, rss_source("broken", "/down"))
    with TelegramStub(token=TOKEN) as telegram:
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_CHAT_IDS": "1001",
            "TELEGRAM_API_URL": telegram.base_url,
        }
        result = run_cli(
            "--config", str(monitor.config), "--db", str(monitor.db), "--log-format", "json", "run", "--once",
            env=env,
        )  # fmt: skip
    assert result.returncode == 1
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    by_source = {e["source"]: e for e in entries if "source" in e}
    assert by_source["sfc-press-en"]["status"] == "baseline" and by_source["sfc-press-en"]["items"] == 6
    assert by_source["broken"]["status"] == "error" and "HTTP 503" in by_source["broken"]["error"]
    for entry in by_source.values():
        assert {"time", "level", "message", "changes", "alerts", "duration_ms"} <= set(entry)
    assert TOKEN not in result.stdout + result.stderr
    assert build_parser().parse_args(["run", "--log-format", "json"]).log_format == "json"  # after it too


def test_without_a_token_json_logs_print_alerts_and_notices_as_json_lines_too(monitor):
    """docker compose sets MONITOR_LOG_FORMAT=json: an alert printed as a text block among the JSON
    lines of stdout was seven lines a log collector could not parse."""
    from tests.conftest import ROUND2

    monitor.write(SFC_PRESS, rss_source("broken", "/down"))
    text = monitor.config.read_text(encoding="utf-8")
    monitor.config.write_text(
        text.replace("[telegram]\n", "[telegram]\nhealth_after = 2\n"), encoding="utf-8"
    )
    args = ("--config", str(monitor.config), "--db", str(monitor.db), "--log-format", "json", "run", "--once")
    run_cli(*args)
    monitor.site.root = ROUND2
    for command in ((*args, "--dry-run", "--all"), (*args, "--all")):
        result = run_cli(*command)
        entries = [json.loads(line) for line in result.stdout.splitlines()]  # every line: JSON
        alerts = [e for e in entries if e["logger"] == "monitor.alert"]
        assert alerts and all(e["message"].startswith("NEW: ") and "== SFC" in e["alert"] for e in alerts)
        dry = "--dry-run" in command  # a collector counting alerts sent must not count a dry run's
        assert all(e.get("dry_run", False) is dry for e in alerts)
    health = [e for e in entries if e["logger"] == "monitor.health"]
    assert health and "Source broken has failed" in health[0]["message"]


def test_an_unchanged_page_s_line_shows_no_item_count_it_did_not_take(monitor, capsys):
    """Not parsed again, its items were not counted: "0 items" read as an emptied feed."""
    monitor.write(SFC_PRESS)
    _, _, first = monitor.round(capsys)
    _, _, again = monitor.round(capsys)
    assert "sfc-press-en: baseline, 6 items/lines, 0 changes, 0 alerts (" in first
    assert "sfc-press-en: unchanged, 0 changes, 0 alerts (" in again


def test_a_dry_run_s_json_lines_say_so(monitor):
    """A log collector counting alerts must not count a dry run's."""
    monitor.write(SFC_PRESS)
    args = ("--config", str(monitor.config), "--db", str(monitor.db), "--log-format", "json", "run", "--once")
    run_cli(*args)
    result = run_cli(*args, "--dry-run", "--all")
    entries = [
        json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.startswith("{")
    ]
    (source,) = [e for e in entries if e.get("source") == "sfc-press-en"]
    assert source["dry_run"] is True
    assert any(e["message"].startswith("dry run (nothing stored or sent): 1 of 1 sources") for e in entries)


def test_a_secret_in_any_log_message_is_redacted():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Redacting(JsonFormatter(), [TOKEN]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.warning("POST https://api.telegram.org/bot%s/sendMessage failed", TOKEN)
    logger.warning("Telegram said: %s", TOKEN.capitalize())  # how PTB words the errors it raises
    logger.removeHandler(handler)
    assert TOKEN.lower() not in stream.getvalue().lower()
    assert (
        "bot<redacted>/sendMessage" in stream.getvalue() and "Telegram said: <redacted>" in stream.getvalue()
    )


def test_a_token_quoted_with_its_colon_encoded_is_redacted_too():
    """A proxy's 502 page quotes the request line: /bot123%3AAAH.../getMe."""
    bot_id, secret = TOKEN.split(":", 1)
    encoded = f'<html><a href="/bot{bot_id}%3A{secret}/getMe">retry</a> or /bot{bot_id}%3a{secret.lower()}'
    assert secret.lower() not in redact(encoded, [TOKEN]).lower()
    assert redact(encoded, [TOKEN]).startswith(f'<html><a href="/bot{bot_id}%3A<redacted>/getMe">')


def test_a_library_s_traceback_is_left_out_of_the_log_unless_debugging(monkeypatch):
    """python-telegram-bot logs a traceback for a proxy's HTML 502; the README promises none."""
    lines, root = {}, logging.getLogger()
    monkeypatch.setattr(root, "level", root.level)
    for level in (logging.INFO, logging.DEBUG):
        stream = io.StringIO()
        monkeypatch.setattr(root, "handlers", [])  # configure() adds its own
        configure(level, "text", stream)
        try:
            json.loads("<html>502 Bad Gateway</html>")
        except ValueError:
            logging.getLogger("telegram.request").exception('Can not load invalid JSON data: "%s"', "<html>")
        root.handlers[0].close()
        lines[level] = stream.getvalue()
    assert lines[logging.INFO].count("\n") == 1 and "Traceback" not in lines[logging.INFO]
    assert lines[logging.INFO].endswith(
        'ERROR Can not load invalid JSON data: "<html>" (JSONDecodeError: Expecting value: line 1 column 1 (char 0))\n'
    )
    assert "Traceback (most recent call last)" in lines[logging.DEBUG]


def test_a_library_s_traceback_from_a_child_process_is_left_out_too():
    """A split round's child sends its records with the traceback as text (monitor.childlogs)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Redacting(OneLineFormatter(TEXT_FORMAT), [], library_tracebacks=False))
    record = logging.makeLogRecord(
        {"name": "pypdf._reader", "levelno": logging.ERROR, "levelname": "ERROR", "msg": "odd xref",
         "exc_text": 'Traceback (most recent call last):\n  File "x.py", line 1\nPdfReadError: bad xref\n'}
    )  # fmt: skip
    handler.handle(record)
    assert stream.getvalue().endswith(" ERROR odd xref (PdfReadError: bad xref)\n")
    assert record.exc_text.startswith("Traceback")  # another handler still sees it whole


def test_a_child_s_records_reach_the_parent_whole_though_another_child_was_killed(caplog):
    """Records come in frames the pipe writes whole; a child killed between two frames of a record
    loses that record only. A traceback of a child is shown as the parent shows its own."""
    reader, writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
    to_parent = ToParent(writer)  # a child's handler
    shown, handler = logging.getLogger("monitor.child"), logging.StreamHandler(io.StringIO())
    handler.setFormatter(Redacting(OneLineFormatter(TEXT_FORMAT), [TOKEN]))
    shown.addHandler(handler)

    def logged_in_child(level: int, message: str, *args: object, source: str, exc_info=None) -> None:
        record = logging.LogRecord("monitor.child", level, "run.py", 1, message, args, exc_info)
        record.source = source
        to_parent.handle(record)

    async def round_with_a_killed_child() -> None:
        with records_from_children(asyncio.get_running_loop(), reader), writer:
            os.write(
                writer.fileno(), b'99999 0 {"name": "monitor.child", "msg": "source sfc-\n'
            )  # then killed
            logged_in_child(
                logging.WARNING, "source %s failed: %s", "hkma-press", "HTTP 503", source="hkma-press"
            )
            try:
                raise ValueError("x" * 5000 + TOKEN)  # over the pipe's atomic write: several frames
            except ValueError:
                logged_in_child(
                    logging.ERROR,
                    "sfc-press-en: internal error",
                    source="sfc-press-en",
                    exc_info=sys.exc_info(),
                )
            await asyncio.sleep(0.05)

    caplog.set_level(logging.INFO)
    try:
        asyncio.run(round_with_a_killed_child())
    finally:
        shown.removeHandler(handler)
    assert [(r.levelname, r.getMessage(), r.source) for r in caplog.records] == [
        ("WARNING", "source hkma-press failed: HTTP 503", "hkma-press"),
        ("ERROR", "sfc-press-en: internal error", "sfc-press-en"),
    ]
    text = handler.stream.getvalue()
    assert "ERROR sfc-press-en: internal error\nTraceback (most recent call last):\n" in text
    assert "ValueError: xxxxx" in text and TOKEN not in text and "<redacted>" in text
