"""Helpers for the fault suite: faster timeouts, the default 10 MB size cap, and user-visible state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import TEST_SETTINGS, TOPICS

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
