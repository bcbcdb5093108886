"""Outbox -> the user. Without a Telegram bot token, alerts are printed to the terminal."""

from __future__ import annotations

import json
import time
from typing import TextIO

from monitor.logs import json_entry
from monitor.models import LoggedChange
from monitor.normalize import clean_text
from monitor.render import render_text
from monitor.store import Store

CONSOLE = "console"


def print_alert(logged: LoggedChange, out: TextIO, json_lines: bool = False, dry_run: bool = False) -> None:
    """The alert as the terminal shows it; with `json_lines`, one JSON object like the log's lines
    (`--log-format json`: a log collector reading stdout gets nothing it cannot parse), marked
    `"dry_run": true` for a dry run's, which was neither stored nor sent."""
    text = render_text(logged)
    if json_lines:
        change = logged.change
        fields = {"dry_run": True} if dry_run else {}
        _json_line(out, "monitor.alert", text.splitlines()[1] if "\n" in text else text, alert=text,
                   change_id=logged.id, source=change.source_id, kind=change.kind, topics=list(change.topics),
                   **fields)  # fmt: skip
    else:
        out.write(text + "\n\n")
    out.flush()


def deliver_console(store: Store, out: TextIO, json_lines: bool = False) -> int:
    """Print every pending console alert, marking each sent as soon as it is printed."""
    alerts = store.pending_alerts(CONSOLE)
    for alert in alerts:
        if alert.logged:
            print_alert(alert.logged, out, json_lines)
        elif json_lines:
            _json_line(out, "monitor.health", clean_text(alert.notice))
        else:
            out.write(f"== Source health {'=' * 48}\n{clean_text(alert.notice)}\n\n")
        out.flush()
        store.mark_sent(alert.outbox_id)
    return len(alerts)


def _json_line(out: TextIO, logger: str, message: str, **fields: object) -> None:
    """As the log's JSON lines are (monitor.logs), among which it is printed."""
    out.write(
        json.dumps(json_entry(time.time(), "info", logger, message, **fields), ensure_ascii=False) + "\n"
    )
