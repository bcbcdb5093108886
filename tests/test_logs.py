"""Log lines: one per source per round, on stdout for `run`, as text or JSON; never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import os
import threading

from monitor.childlogs import ToParent, records_from_children
from monitor.cli import build_parser
from monitor.logs import JsonFormatter, Redacting
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


def test_a_secret_in_any_log_message_is_redacted():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Redacting(JsonFormatter(), [TOKEN]))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.warning("POST https://api.telegram.org/bot%s/sendMessage failed", TOKEN)
    logger.removeHandler(handler)
    assert TOKEN not in stream.getvalue() and "bot<redacted>/sendMessage" in stream.getvalue()


def test_a_child_s_broken_line_is_skipped_and_the_next_ones_logged(caplog):
    """A child killed halfway through writing a record leaves part of a line in the pipe."""
    reader, writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
    to_parent = ToParent(writer.fileno(), threading.Lock())  # a child's handler

    def logged_in_child(level: int, message: str, *args: object, source: str) -> None:
        record = logging.LogRecord("monitor.run", level, "run.py", 1, message, args, None)
        record.source = source
        to_parent.handle(record)

    async def round_with_a_killed_child() -> None:
        with records_from_children(asyncio.get_running_loop(), writer, reader):
            logged_in_child(
                logging.WARNING, "source %s failed: %s", "hkma-press", "HTTP 503", source="hkma-press"
            )
            os.write(writer.fileno(), b'{"name": "monitor.run", "msg": "source sfc-')  # killed here
            os.write(writer.fileno(), b"\n")
            logged_in_child(logging.INFO, "sfc-press-en: baseline, 6 items/lines", source="sfc-press-en")
            await asyncio.sleep(0.05)

    caplog.set_level(logging.INFO)
    asyncio.run(round_with_a_killed_child())
    assert [(r.name, r.levelname, r.getMessage(), r.source) for r in caplog.records] == [
        ("monitor.run", "WARNING", "source hkma-press failed: HTTP 503", "hkma-press"),
        ("monitor.run", "INFO", "sfc-press-en: baseline, 6 items/lines", "sfc-press-en"),
    ]
