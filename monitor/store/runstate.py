"""When the long-running run started and when its last round finished: what `health` reads."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from monitor.models import RunState
from monitor.store.transaction import immediate

STARTED, LAST_ROUND_AT, LAST_ROUND = "started_at", "last_round_at", "last_round"


class RunStateStore:
    db: object  # sqlite_utils.Database, set by Store

    def mark_started(self, when: str) -> None:
        self._set({STARTED: when})

    def record_round(self, when: str, summary: Mapping[str, int]) -> None:
        self._set({LAST_ROUND_AT: when, LAST_ROUND: json.dumps(dict(summary))})

    def run_state(self) -> RunState:
        try:
            values = dict(self.db.execute("SELECT key, value FROM run_state").fetchall())
        except sqlite3.OperationalError as exc:  # a database from before run_state: no round recorded
            if "no such table" not in str(exc):
                raise
            values = {}
        return RunState(values.get(STARTED, ""), values.get(LAST_ROUND_AT, ""), values.get(LAST_ROUND, ""))

    def _set(self, values: Mapping[str, str]) -> None:
        with immediate(self.db):
            self.db.conn.executemany(
                "INSERT INTO run_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )
