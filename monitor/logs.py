"""Logging set-up: plain lines or JSON lines (`--log-format json`), never a secret."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import TextIO

from monitor.normalize import one_line

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
# The structured fields a log line may carry (`extra=`); JSON lines keep them as they are.
FIELDS = ("source", "status", "items", "changes", "alerts", "duration_ms", "error", "dry_run")


class OneLineFormatter(logging.Formatter):
    """Text lines: each message one line without control characters, since messages carry scraped
    text (a soft-404 title, a server's reason phrase) that must not drive a terminal. Tracebacks
    (--debug) keep their lines. (JSON lines escape control characters by themselves.)"""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)


def json_entry(created: float, level: str, logger: str, message: str, **fields: object) -> dict:
    """A JSON log line's object: time (UTC), level, logger, message, then its fields."""
    time = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return {"time": time, "level": level, "logger": logger, "message": message, **fields}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors: time (UTC), level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: getattr(record, key) for key in FIELDS if hasattr(record, key)}
        entry = json_entry(
            record.created, record.levelname.lower(), record.name, record.getMessage(), **fields
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # a child process's record (monitor.childlogs): the traceback as text
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def redact(text: str, secrets: Iterable[str], mask: str = "<redacted>") -> str:
    """`text` with each secret replaced by `mask`, in any case: python-telegram-bot capitalizes
    the error descriptions it passes on. The one place the token is taken out of what is shown."""
    return _masked(_secrets_pattern(tuple(secrets)), text, mask)


def _masked(pattern: re.Pattern[str] | None, text: str, mask: str) -> str:
    return pattern.sub(mask, text) if pattern else text


@lru_cache(maxsize=8)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """Made once per set of secrets (the CLI and the Telegram sender redact their error lines).
    A bot token's part after its colon is a secret on its own: a proxy's error page quotes the
    URL with the colon encoded (`bot123%3AAAH…`), and the bot id before it is public anyway."""
    parts = {part for secret in secrets if secret for part in (secret, _token_secret(secret)) if part}
    kept = "|".join(re.escape(part) for part in sorted(parts, key=len, reverse=True))
    return re.compile(kept, re.IGNORECASE) if kept else None


def _token_secret(secret: str) -> str:
    bot_id, colon, rest = secret.partition(":")
    return rest if colon and bot_id.isdigit() and len(rest) >= 16 else ""


class Redacting(logging.Formatter):
    """Wraps a formatter; whatever a library puts in a message, a secret comes out as <redacted>.
    (A Bot API URL carries the token, and httpx logs URLs.) Unless `library_tracebacks` (--debug),
    a library's record keeps its line but not its traceback: python-telegram-bot logs one for
    every answer that is not JSON (a proxy's "502 Bad Gateway" page), a failure the monitor handles
    and reports in its own words."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str], library_tracebacks: bool = True):
        super().__init__()
        self._inner = inner
        self._secrets = _secrets_pattern(tuple(secrets))  # made once: every log line goes through it
        self._library_tracebacks = library_tracebacks

    def format(self, record: logging.LogRecord) -> str:
        library = not record.name.startswith("monitor")
        if library and not self._library_tracebacks and (record.exc_info or record.exc_text):
            record = _without_traceback(record)
        return _masked(self._secrets, self._inner.format(record), "<redacted>")


def _without_traceback(record: logging.LogRecord) -> logging.LogRecord:
    """A copy (other handlers see the record as it was) with the error in one line instead. A child
    process's record (monitor.childlogs) carries its traceback as text only: its last line."""
    if record.exc_info and record.exc_info[1] is not None:
        error = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
    else:
        error = next((line for line in reversed((record.exc_text or "").splitlines()) if line.strip()), "")
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg, copy.args = f"{record.getMessage()} ({error.strip()})", ()
    copy.exc_info, copy.exc_text = None, None
    return copy


def configure(level: int, log_format: str, stream: TextIO, secrets: Iterable[str] = ()) -> None:
    """Root logging to `stream`. Like logging.basicConfig, it leaves a logging set-up already in
    place (a test's log capture) alone."""
    inner = JsonFormatter() if log_format == "json" else OneLineFormatter(TEXT_FORMAT, "%Y-%m-%d %H:%M:%S")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Redacting(inner, secrets, library_tracebacks=level <= logging.DEBUG))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("httpx", "httpcore", "telegram", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
