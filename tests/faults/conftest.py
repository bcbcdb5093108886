"""Helpers for the fault suite: faster timeouts, the default 10 MB size cap, and user-visible state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import TEST_SETTINGS, TOPICS
from tests.telegram_stub import TelegramStub

# As the shared test settings, but a 0.3 s timeout (the timeout fault runs three rounds) and the
# shipped 10 MB size cap, so the 50 MB body and the gzip bomb meet the cap a user would have.
FAULT_SETTINGS = TEST_SETTINGS.replace("timeout = 1\n", "timeout = 0.3\n").replace("max_bytes = 200000\n", "")
assert FAULT_SETTINGS != TEST_SETTINGS and "max_bytes" not in FAULT_SETTINGS


def write_config(monitor, *sources: str, settings: str = FAULT_SETTINGS) -> None:
    body = "\n".join(s.replace("{base}", monitor.site.base_url) for s in sources)
    monitor.config.write_text(settings + "\n" + TOPICS + "\n" + body, encoding="utf-8")


def rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def assert_consistent(db: Path) -> None:
    """What "nothing half-written" means for the state database, checked from the outside."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = {
            # the current snapshot of every source is stored
            "source_state without its snapshot": """SELECT source_id FROM source_state
                WHERE snapshot_hash != '' AND snapshot_hash NOT IN (SELECT hash FROM snapshots)""",
            # a stored version has its snapshot and raw body (the evidence)
            "fetch without its snapshot or body": """SELECT id FROM fetches
                WHERE status IN ('baseline', 'changed', 'updated')
                AND (snapshot_hash NOT IN (SELECT hash FROM snapshots)
                     OR raw_sha256 NOT IN (SELECT sha256 FROM bodies))""",
            # every change came from a logged fetch of a stored version
            "change without its fetch": "SELECT id FROM changes WHERE fetch_id NOT IN (SELECT id FROM fetches)",
            # an alerting change was queued in the same transaction (unless it repeats another one)
            "alerting change never queued": """SELECT id FROM changes WHERE topics != '[]'
                AND duplicate_of IS NULL AND id NOT IN (SELECT change_id FROM outbox WHERE change_id IS NOT NULL)""",
        }
        for what, sql in orphans.items():
            assert conn.execute(sql).fetchall() == [], what


TOKEN = "987654321:AAH-grep-me_0123456789abcdefghijklmnopqrs"
SECRET = TOKEN.split(":", 1)[1]  # the part that matters; the bot id before it is public
PRIVATE, GROUP = "1001", "-2002"


@pytest.fixture
def telegram(monkeypatch):
    with TelegramStub(token=TOKEN) as stub:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_CHAT_IDS", f"{PRIVATE},{GROUP}")
        monkeypatch.setenv("TELEGRAM_API_URL", stub.base_url)
        yield stub


def sent_to(stub: TelegramStub, chat: str) -> list[str]:
    return [m["text"] for m in stub.sent if str(m["chat_id"]) == chat]
