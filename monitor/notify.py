"""Outbox -> the user. Without a Telegram bot token, alerts are printed to the terminal."""

from __future__ import annotations

from typing import TextIO

from monitor.models import LoggedChange
from monitor.normalize import clean_text
from monitor.render import render_text
from monitor.store import Store

CONSOLE = "console"


def print_alert(logged: LoggedChange, out: TextIO) -> None:
    out.write(render_text(logged) + "\n\n")
    out.flush()


def deliver_console(store: Store, out: TextIO) -> int:
    """Print every pending console alert, marking each sent as soon as it is printed."""
    alerts = store.pending_alerts(CONSOLE)
    for alert in alerts:
        if alert.logged:
            print_alert(alert.logged, out)
        else:
            out.write(f"== Source health {'=' * 48}\n{clean_text(alert.notice)}\n\n")
        store.mark_sent(alert.outbox_id)
    return len(alerts)
