"""One writer per state database: a second `run` or `bot` on it refuses instead of double-sending."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monitor.errors import StoreError


@contextmanager
def hold_lock(db_path: str | Path) -> Iterator[None]:
    """Hold the database's lock while the block runs (the OS releases it if the process dies)."""
    path = _lock_file(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as exc:  # a read-only volume, a missing permission
        raise StoreError(
            f"cannot lock the state database {db_path}: {exc.strerror or exc} "
            f"({path.parent} must be writable)"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreError(
            f"{db_path} is in use by policy-monitor ({holder}); one process per database "
            "(a second one would send the same alerts)"
        ) from None
    try:  # unbuffered, so a full disk fails here and not again when the file is closed
        os.ftruncate(handle.fileno(), 0)
        os.pwrite(handle.fileno(), f"pid {os.getpid()}".encode(), 0)
    except OSError as exc:  # a full disk: the lock is held, only the note of who holds it is lost
        if exc.errno != errno.ENOSPC:
            raise
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def holder(db_path: str | Path) -> str:
    """Who holds the database's lock now ('' if no one): a running `run` or `bot`."""
    path = _lock_file(db_path)
    try:
        handle = path.open("r")
    except OSError:
        return ""
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return ""


def _lock_file(db_path: str | Path) -> Path:
    """Beside the database file itself: a second process given it through a symlink, or by another
    relative path, takes the same lock."""
    return Path(f"{os.path.realpath(db_path)}.lock")
