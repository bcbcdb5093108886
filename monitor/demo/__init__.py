"""`policy-monitor demo`: the real pipeline, offline, against bundled sample regulator pages.

Round 1 records the baseline silently, as any first run does; round 2 serves the next day's
pages (new releases, a new register entry, and the usual noise) and prints the alerts.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import TextIO

from monitor.config import load_config
from monitor.exit_codes import EXIT_OK, EXIT_SOURCES_FAILED
from monitor.localsite import LocalSite
from monitor.models import Config
from monitor.notify import CONSOLE, deliver_console
from monitor.run import RoundResult, run_round
from monitor.store import Store

HERE = Path(__file__).parent
SITE = HERE / "site"


def demo_config(base_url: str, folder: Path) -> Config:
    """The bundled sources pointed at `base_url`, written to `folder` so errors can name the file."""
    path = folder / "sources.toml"
    path.write_text((HERE / "sources.toml").read_text(encoding="utf-8").replace("{base}", base_url), "utf-8")
    return load_config(path)


def run_demo(out: TextIO) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="policy-monitor-demo-") as tmp,
        LocalSite(SITE / "round1") as site,
    ):
        config = demo_config(site.base_url, Path(tmp))
        store = Store.open(Path(tmp) / "demo.db")
        store.sync_sources(config.sources)
        out.write(f"Serving sample SFC, HKMA and FSTB pages on {site.base_url}\n\n")
        first = _round(config, store)
        out.write(
            f"Round 1: baseline recorded for {_ok(first)} of {len(config.sources)} sources (no alerts on a first run).\n"
        )
        site.root = SITE / "round2"
        second = _round(config, store)
        changes = sum(len(o.changes) for o in second.outcomes)
        out.write(f"Round 2: {changes} changes found; alerts follow.\n\n")
        alerts = deliver_console(store, out)
        out.write(
            f"{alerts} alerts; {changes - alerts} more changes logged without an alert "
            "(off-topic, or one release already alerted through another source).\n"
        )
        failed = first.failed + second.failed
        for outcome in failed:
            out.write(f"source {outcome.source_id} failed: {outcome.error}\n")
        store.close()
    return EXIT_SOURCES_FAILED if failed else EXIT_OK


def _round(config: Config, store: Store) -> RoundResult:
    return asyncio.run(run_round(config, store, config.sources, {CONSOLE: None}, notice_chats=[CONSOLE]))


def _ok(result: RoundResult) -> int:
    return sum(1 for o in result.outcomes if o.status != "error")
