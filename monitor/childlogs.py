"""A child process's log records, written by its parent as they come (see cores.py).

A child writes each record as JSON to a pipe; the parent's event loop reads what is there without
blocking and hands each record to its own logging set-up, so a child's lines come in the
parent's format (text or JSON lines, the token redacted) and at its levels. There is no thread
on either side: in a CPU-bound process a logging thread cost more in hand-overs of the GIL than
the lines themselves (~0.1 s of CPU for 500 lines).

A record goes in frames of at most PIPE_BUF bytes, which the kernel writes whole: children need
no lock between them (a lock held by a child that is killed would stop the others for good),
and a child killed halfway through a record leaves whole frames of it, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
from collections.abc import Iterator
from multiprocessing.connection import Connection

# The levels a child logs at, as in the parent (`--quiet`, `--debug`, httpx kept to warnings).
LOGGERS = ("", "monitor", "httpx", "httpcore", "pypdf")
FRAME = select.PIPE_BUF - 32  # a frame's part of a record, leaving room for "<pid> <last> " and "\n"


def levels() -> dict[str, int]:
    return {name: logging.getLogger(name).getEffectiveLevel() for name in LOGGERS}


@contextlib.contextmanager
def records_from_children(loop: asyncio.AbstractEventLoop, reader: Connection) -> Iterator[None]:
    """While inside, the records children write to the other end of `reader` are logged here.
    `reader` is closed on the way out, after the last frames are read."""
    fd = reader.fileno()
    os.set_blocking(fd, False)
    pending, records = bytearray(), _Records()

    def read() -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(fd, 65536):
                pending.extend(chunk)
        *frames, rest = pending.split(b"\n")
        pending[:] = rest
        for frame in frames:
            records.add(bytes(frame))

    loop.add_reader(fd, read)
    try:
        yield
    finally:
        try:
            loop.remove_reader(fd)
            read()  # what the children, which have exited, wrote last
        finally:
            reader.close()


class _Records:
    """Frames put back together, by child."""

    def __init__(self) -> None:
        self._parts: dict[bytes, list[bytes]] = {}

    def add(self, frame: bytes) -> None:
        pid, last, part = [*frame.split(b" ", 2), b"", b""][:3]
        self._parts.setdefault(pid, []).append(part)
        if last == b"1":
            _log(b"".join(self._parts.pop(pid)))


def _log(data: bytes) -> None:
    try:
        fields = json.loads(data)
    except ValueError:
        return
    if isinstance(fields, dict):
        logging.getLogger(str(fields.get("name", ""))).handle(logging.makeLogRecord(fields))


def send_to_parent(writer: Connection, levels: dict[str, int]) -> None:
    """In a child: every record goes to the parent instead of to a stream here."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.addHandler(ToParent(writer))
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


class ToParent(logging.Handler):
    def __init__(self, writer: Connection):
        super().__init__()
        self._writer = writer  # kept: its file descriptor lives as long as it does
        self._prefix = b"%d " % os.getpid()
        self.setFormatter(logging.Formatter())  # for tracebacks, which the parent shows as its own

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(record.__dict__)  # with the extra fields: JSON lines keep them
            exc_text = self.formatter.formatException(record.exc_info) if record.exc_info else None
            fields.update(
                msg=record.getMessage(), args=None, exc_info=None, exc_text=exc_text or record.exc_text
            )
            data = json.dumps(fields, default=str).encode("ascii")  # no raw newline in it
            for at in range(0, len(data), FRAME):
                last = b"1 " if at + FRAME >= len(data) else b"0 "
                os.write(self._writer.fileno(), self._prefix + last + data[at : at + FRAME] + b"\n")
        except Exception:
            self.handleError(record)
