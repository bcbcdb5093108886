"""Write transactions that wait for another writer instead of failing at once."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from monitor.errors import StoreError
from monitor.lean_imports import without

with without("numpy"):  # see lean_imports
    import sqlite_utils

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def immediate(db: sqlite_utils.Database) -> Iterator[None]:
    """A transaction that takes SQLite's write lock at BEGIN (nested: a savepoint).

    sqlite-utils' atomic() begins a deferred transaction. One that reads before its first write
    (an insert looks up the table first) cannot wait for another writer to finish: SQLite answers
    "database is locked" at once, without the busy timeout, because waiting could deadlock. So a
    `review` typed while a round was storing, or `prune` during a round, failed on the spot. With
    the lock taken at BEGIN, the second writer waits up to busy_timeout instead.
    """
    conn = db.conn
    if conn.in_transaction:
        with db.atomic():
            yield
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def writes(method: Callable[P, R]) -> Callable[P, R]:
    """A write the round depends on: a full disk or a read-only file is the store's failure (the
    round stops with StoreError), never mistaken for a failure of the source being stored."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            path = getattr(args[0], "path", "")
            advice = (
                "another process held its write lock for over 10 s (a prune, a copy of the file?)"
                if "locked" in str(exc) or "busy" in str(exc)
                else "free space or make it writable"
            )
            raise StoreError(
                f"cannot write the state database {path}: {exc} (the write was rolled back; {advice}, then run again)"
            ) from None

    return wrapper
