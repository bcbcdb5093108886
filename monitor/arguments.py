"""policy-monitor's command line: its commands, options and their defaults (from the environment)."""

from __future__ import annotations

import argparse
import os

from monitor import __version__
from monitor.exit_codes import EXIT_USAGE
from monitor.shard import parse_shard


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: exit 2, one line
        self.exit(EXIT_USAGE, f"error: {message} (see policy-monitor --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="policy-monitor", description="Watch Hong Kong regulators for topic changes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        default=os.environ.get("MONITOR_CONFIG", "sources.toml"),
        help="sources file (env MONITOR_CONFIG; default ./sources.toml)",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get("MONITOR_DB", "state/monitor.db"),
        help="state database (env MONITOR_DB; default ./state/monitor.db)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors in the log")
    _log_format(parser, os.environ.get("MONITOR_LOG_FORMAT", "text"))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="poll the sources (one round with --once, else forever)")
    run.add_argument("--once", action="store_true", help="one round over every due source, then exit")
    run.add_argument("--dry-run", action="store_true", help="compute and print alerts, store nothing")
    run.add_argument("--all", action="store_true", help="poll every source now, due or not")
    _log_format(run, argparse.SUPPRESS)
    run.add_argument("--shard", type=parse_shard, metavar="I/N",
                     help="poll only shard I of N (a stable share of the sources; one database per shard)")  # fmt: skip

    check = commands.add_parser("check", help="fetch and extract one source, print it, write nothing")
    check.add_argument("source_id")

    commands.add_parser("validate", help="validate the config and exit")

    bot = commands.add_parser("bot", help="answer Telegram commands and send pending alerts (needs a token)")
    bot.add_argument("--once", action="store_true", help="handle the commands waiting now, then exit")
    _log_format(bot, argparse.SUPPRESS)

    health = commands.add_parser(
        "health", help="exit 0 if the last round finished in time (for Docker's HEALTHCHECK), else 1"
    )
    health.add_argument("--shard", type=parse_shard, metavar="I/N",
                        help="the shard the run checked was given (its sources set the expected pace)")  # fmt: skip

    log = commands.add_parser("log", help="the change log, newest first")
    _filters(log)
    log.add_argument("--format", choices=("table", "json", "csv"), default="table")

    show = commands.add_parser("show", help="one change in full, or the raw bytes it came from")
    show.add_argument("change_id", type=_change_id)
    version = show.add_mutually_exclusive_group()
    version.add_argument("--raw", "--after", dest="raw", action="store_const", const="after",
                         help="write the exact bytes of the version the change came from")  # fmt: skip
    version.add_argument("--before", dest="raw", action="store_const", const="before",
                         help="write the exact bytes of the version before it")  # fmt: skip
    show.add_argument("--out", default="", help="with --raw/--before: write to this file, not stdout")

    review = commands.add_parser("review", help="record a review of a change")
    review.add_argument("change_id", type=_change_id)
    review.add_argument(
        "--state", required=True, type=str.lower, choices=("reviewed", "dismissed", "escalated")
    )
    review.add_argument("--note", default="")
    review.add_argument("--by", default=os.environ.get("USER", ""), help="who reviewed (default: $USER)")

    export = commands.add_parser("export", help="the change log with review state, for spreadsheets")
    _filters(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument(
        "--excel", action="store_true", help="a CSV for Excel: a byte-order mark, no cell read as a formula"
    )

    report = commands.add_parser("report", help="write the change log as a static HTML site")
    _filters(report)
    report.add_argument("--out", required=True, help="the folder to write (index.html and changes/)")

    prune = commands.add_parser("prune", help="remove old raw bodies that no change refers to")
    prune.add_argument(
        "--keep-days", type=_days, required=True, help="days of raw bodies to keep (0 or more)"
    )
    prune.add_argument(
        "--fetch-records",
        action="store_true",
        help="also the old records of polls that found nothing new (a change's own, each source's latest 20, "
        "baselines and failed polls stay)",
    )

    commands.add_parser("demo", help="run two rounds against bundled sample regulator pages, offline")
    return parser


def _log_format(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default,
        help="log lines as text or JSON objects (env MONITOR_LOG_FORMAT; default text)",
    )


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=_name)
    parser.add_argument("--regulator", type=_name)
    parser.add_argument("--topic", type=_name)
    parser.add_argument(
        "--state", default="", type=str.lower, choices=("new", "reviewed", "dismissed", "escalated")
    )
    parser.add_argument("--since", default="", help="YYYY-MM-DD (Hong Kong time), inclusive")
    parser.add_argument("--until", default="", help="YYYY-MM-DD (Hong Kong time), exclusive")
    parser.add_argument("--limit", type=_count, default=0, help="at most this many, newest first (0: all)")


def _name(text: str) -> str:
    """A filter's value (None when not given): an empty one (`--source ""`, an unset shell
    variable) would filter nothing."""
    if not text.strip():
        raise ValueError(text)
    return text.strip()


_name.__name__ = "non-empty"  # argparse's error: "invalid non-empty value: ''"


def _count(text: str) -> int:
    """A whole number of 0 or more (argparse names the option and the value when it is not)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_count.__name__ = "number of 0 or more"  # argparse's error: "invalid number of 0 or more value: '-1'"


def _change_id(text: str) -> int:
    """A change's number: SQLite's integers end at 2**63 - 1."""
    value = int(text)
    if not 0 < value < 2**63:
        raise ValueError(text)
    return value


_change_id.__name__ = "change id"  # argparse's error: "invalid change id value: '0'"


def _days(text: str) -> int:
    value = _count(text)
    if value > 36_500:  # a century: beyond it, no date can be counted back to
        raise ValueError(text)
    return value


_days.__name__ = "number of days (0 to 36500)"
