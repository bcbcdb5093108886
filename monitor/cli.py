"""policy-monitor: argument parsing, logging set-up, errors -> `error: ...` and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from pathlib import Path

from monitor import logs
from monitor.arguments import build_parser
from monitor.config import load_config
from monitor.config.advice import warnings as config_warnings
from monitor.errors import MonitorError, SourceError, UsageError
from monitor.exit_codes import EXIT_OK, EXIT_SOURCES_FAILED, EXIT_UNHEALTHY, EXIT_USAGE
from monitor.models import ChangeFilter, Config, LoggedChange
from monitor.normalize import one_line
from monitor.shard import select_shard
from monitor.store import Store
from monitor.store.lock import hold_lock

log = logging.getLogger("monitor.cli")


def redact(text: str) -> str:
    """The bot token out of an error line (python-telegram-bot quotes it in InvalidToken)."""
    return logs.redact(text, [os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Windows, a C locale: a Chinese title must not end an export (None: pythonw, no console).
    out = sys.stdout
    if hasattr(out, "reconfigure") and (out.encoding or "").lower().replace("-", "") != "utf8":
        out.reconfigure(encoding="utf-8")
    logs.configure(
        logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO,
        args.log_format,
        # The services (`run`, `bot`) log to stdout, as containers expect; the other commands
        # keep stdout for their output (`log`, `export`, `show --raw`) and log to stderr.
        sys.stdout if args.command in ("run", "bot") else sys.stderr,
        secrets=[os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()],
    )
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # "incorrect startxref" on many real PDFs
    try:
        return COMMANDS[args.command](args)
    except SourceError as exc:  # `check` of one source: the source failed, not the command line
        return _fail(args, str(exc), EXIT_SOURCES_FAILED)
    except MonitorError as exc:
        return _fail(args, str(exc), EXIT_USAGE)
    except sqlite3.Error as exc:
        return _fail(args, f"state database {args.db}: {exc}", EXIT_USAGE)
    except BrokenPipeError:  # `policy-monitor log | head`: the reader has what it wanted
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:  # a bug: one line (the traceback with --debug), and never the token
        detail = f"internal error: {type(exc).__name__}: {exc} (--debug shows where; please report it)"
        return _fail(args, detail, EXIT_USAGE)


def _fail(args: argparse.Namespace, message: str, code: int) -> int:
    if args.debug:
        logging.exception("failed")
    print(f"error: {redact(one_line(message))}", file=sys.stderr)
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{config.path}: {len(config.sources)} sources, {len(config.topics)} topics: OK")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from monitor import commands

    config = load_config(args.config)
    for warning in config_warnings(config):
        log.warning("%s", warning)
    if args.shard:  # the sources this process owns, for one round or for good
        config = select_shard(config, *args.shard)
    if args.dry_run:  # never sends, whatever the environment says
        return commands.dry_run(config, args.db, sys.stdout, args.all, args.log_format == "json")
    with hold_lock(args.db):
        return _run(args, config)


def _run(args: argparse.Namespace, config: Config) -> int:
    from monitor import commands, service
    from monitor.channel import open_channel

    store = open_store(args.db, config)
    telegram = telegram_env()

    async def run() -> int:
        async with AsyncExitStack() as stack:
            json_lines = args.log_format == "json"
            channel = await open_channel(
                stack, config, store, sys.stdout, telegram, not args.once, json_lines
            )
            if args.once:
                return await commands.run_once(config, store, channel, everything=args.all)
            await service.run_forever(config, store, channel, everything=args.all)
            return EXIT_OK

    try:
        return asyncio.run(run())
    finally:
        store.close()


def cmd_bot(args: argparse.Namespace) -> int:
    from monitor import commands
    from monitor.channel import open_channel

    config = load_config(args.config)
    telegram = telegram_env()
    if telegram is None:
        raise UsageError("the bot needs TELEGRAM_BOT_TOKEN in the environment")

    async def run(store: Store) -> None:
        async with AsyncExitStack() as stack:
            channel = await open_channel(stack, config, store, sys.stdout, telegram, True)
            await commands.run_bot(store, channel, once=args.once)

    with hold_lock(args.db):
        store = open_store(args.db, config)
        try:
            asyncio.run(run(store))
            return EXIT_OK
        finally:
            store.close()


def cmd_health(args: argparse.Namespace) -> int:
    """Healthy: exit 0 and one line on stdout. Anything else, a missing or unreadable database or a
    bad config included: exit 1 and one line on stderr (Docker reserves exit 2 in health checks)."""
    from monitor.health import assess

    try:
        config = load_config(args.config)
        if args.shard:  # a shard's pace is that of its own sources, not of the whole list
            config = select_shard(config, *args.shard)
        store = Store.open_read_only(args.db)
        try:
            state = store.run_state()
        finally:
            store.close()
    except (MonitorError, sqlite3.Error) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return EXIT_UNHEALTHY
    verdict = assess(config.sources, state, datetime.now(UTC))
    if not verdict.healthy:
        print(f"unhealthy: {verdict.reason}", file=sys.stderr)
        return EXIT_UNHEALTHY
    print(f"healthy: {verdict.reason}")
    return EXIT_OK


def telegram_env():
    """Telegram settings from the environment only: the token never lives in a file of the repo."""
    if not os.environ.get("TELEGRAM_BOT_TOKEN", "").strip():
        return None  # the terminal: python-telegram-bot is not even imported (~0.2 s)
    from monitor.telegram import TelegramEnv

    return TelegramEnv.from_environ(os.environ)


def cmd_check(args: argparse.Namespace) -> int:
    from monitor import commands

    return commands.check(load_config(args.config), args.source_id, sys.stdout)


def _filtered_changes(store: Store, args: argparse.Namespace) -> list[LoggedChange]:
    """The changes `log`, `export` and `report` show. A name they filter by is checked against what
    the database's sources and changes name, and the config's topics if it is at hand (a topic
    may have no change yet); read only when a name is given."""
    from monitor import review

    known: dict[str, set[str]] = {}
    if args.source or args.regulator or args.topic:
        known = store.filter_values()
        with suppress(MonitorError):  # a reviewer may have the database alone
            known["--topic"] |= set(load_config(args.config).topics)
    return store.changes(review.change_filter(args, known))


def cmd_log(args: argparse.Namespace) -> int:
    from monitor import review

    store = Store.open(args.db, create=False)
    changes = _filtered_changes(store, args)
    recorded = bool(changes) or bool(store.changes(ChangeFilter(limit=1)))
    review.print_log(changes, args.format, sys.stdout, recorded=recorded)
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from monitor import review

    if args.excel and args.format != "csv":
        raise UsageError("--excel is for --format csv")
    store = Store.open(args.db, create=False)
    changes = _filtered_changes(store, args)
    reviews = {c.id: store.reviews(c.id) for c in changes}
    review.export(changes, args.format, sys.stdout, reviews, excel=args.excel)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.report import write_report
    from monitor.store import utc_now

    store = Store.open(args.db, create=False)
    changes = _filtered_changes(store, args)
    index = write_report(changes, {c.id: store.reviews(c.id) for c in changes}, Path(args.out), utc_now())
    print(f"{len(changes)} changes written to {index}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from monitor import review

    if args.out and not args.raw:  # the text is for reading; --out is for the exact bytes
        raise UsageError(
            "--out writes the raw bytes of --raw or --before; "
            f"to save the change as text: policy-monitor show {args.change_id} > {args.out}"
        )
    store = Store.open(args.db, create=False)
    logged = store.change(args.change_id)
    if args.raw:
        if not args.out and sys.stdout.isatty():  # a server's bytes may carry escape sequences
            raise UsageError(
                "--raw writes the exact bytes the server sent, which can drive a terminal: "
                f"give --out FILE, or pipe it (policy-monitor show {args.change_id} --raw | less)"
            )
        digest = logged.raw_sha256 if args.raw == "after" else logged.old_raw_sha256
        review.write_raw(logged, args.raw, store.body(digest) if digest else None, args.out)
        return EXIT_OK
    review.print_change(logged, store.reviews(logged.id), sys.stdout)
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    if not args.by.strip():  # a review is evidence: who made it is part of it
        raise UsageError("who reviewed? give --by NAME ($USER is not set here)")
    store = Store.open(args.db, create=False)
    entry = store.add_review(args.change_id, args.state, args.by, args.note)
    title = one_line(store.change(entry.change_id).change.title)  # so a review of the wrong one shows
    print(f"change {entry.change_id}: {entry.state}" + (f" by {entry.by}" if entry.by else "") + f": {title}")
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    from monitor.store.lock import holder

    store = Store.open(args.db, create=False)
    running = holder(args.db)  # VACUUM would lock the database past the run's 10 s of patience
    bodies, fetches, reclaimed = store.prune(
        args.keep_days, fetch_records=args.fetch_records, vacuum=not running
    )
    removed = (
        f"{bodies} raw bodies and {fetches} fetch records" if args.fetch_records else f"{bodies} raw bodies"
    )
    if running:
        print(
            f"removed {removed} that no change refers to; the database is in use ({running}), so the "
            "space stays in the file for its next writes (prune while the monitor is stopped to shrink it)"
        )
        return EXIT_OK
    print(f"removed {removed} that no change refers to; reclaimed {reclaimed / 1024:.1f} KB")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    if not args.debug:  # the demo prints its own summary of each round
        logging.getLogger("monitor").setLevel(logging.WARNING)
    return run_demo(sys.stdout)


def open_store(path: str, config: Config | None = None) -> Store:
    store = Store.open(Path(path))
    if config:
        store.sync_sources(config.sources)
    return store


COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "validate": cmd_validate,
    "bot": cmd_bot,
    "health": cmd_health,
    "log": cmd_log,
    "show": cmd_show,
    "review": cmd_review,
    "export": cmd_export,
    "report": cmd_report,
    "prune": cmd_prune,
    "demo": cmd_demo,
}
