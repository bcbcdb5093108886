"""A child process's log records, written by its parent as they come (see cores.py).

The child writes each record as one line of JSON to a pipe; the parent's event loop reads what is
there without blocking and hands each record to its own logging set-up, so a child's lines come
in the parent's format (text or JSON lines, the token redacted) and at its levels. There is no
thread on either side: in a CPU-bound process a logging thread cost more in hand-overs of the
GIL than the lines themselves (~0.1 s of CPU for 500 lines). A child killed halfway through a
line leaves a broken line, which is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from multiprocessing.connection import Connection

# The levels a child logs at, as in the parent (`--quiet`, `--debug`, httpx kept to warnings).
LOGGERS = ("", "monitor", "httpx", "httpcore", "pypdf")
LEFT_OUT = ("msg", "args", "exc_info", "exc_text")  # replaced by the message, traceback included


def levels() -> dict[str, int]:
    return {name: logging.getLogger(name).getEffectiveLevel() for name in LOGGERS}


@contextlib.contextmanager
def records_from_children(
    loop: asyncio.AbstractEventLoop, writer: Connection, reader: Connection
) -> Iterator[None]:
    """While inside, the records the children write to `writer` are logged here."""
    fd = reader.fileno()
    os.set_blocking(fd, False)
    pending = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            pending.extend(chunk)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            _log(line)

    loop.add_reader(fd, read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        read()  # the last lines of the children, which have exited
        reader.close()
        writer.close()


def _log(line: bytes) -> None:
    try:
        fields = json.loads(line)
    except ValueError:  # the part of a line a killed child had written
        return
    logging.getLogger(fields.get("name", "")).handle(logging.makeLogRecord(fields))


def send_to_parent(writer: Connection, lock, levels: dict[str, int]) -> None:
    """In a child: every record goes to the parent instead of to a stream here."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(ToParent(writer.fileno(), lock))
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


class ToParent(logging.Handler):
    def __init__(self, fd: int, lock):
        super().__init__()
        self._fd, self._lock = fd, lock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {key: value for key, value in record.__dict__.items() if key not in LEFT_OUT}
            fields["msg"] = self.format(record)  # the message, and a traceback with --debug
            line = memoryview((json.dumps(fields, default=str) + "\n").encode("utf-8"))
            with self._lock:  # a line longer than the pipe's atomic write goes in parts: one child at a time
                while line:
                    line = line[os.write(self._fd, line) :]
        except Exception:
            self.handleError(record)
