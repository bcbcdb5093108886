"""Importing a library without the optional extras it pulls in whenever they are installed.

Every round starts a process (and a big round one per core), so what it imports is paid in
start-up time and in memory each time. Three libraries import heavy extras the monitor never uses:
sqlite-utils imports numpy (to store numpy numbers; ~12 MB and ~50 ms), httpx imports its
command-line client, which imports rich, click and pygments (~25 ms), and httpcore imports trio
wherever it is installed (to run under trio; ~38 ms). The extras stay importable for whoever asks
for them afterwards (`policy-monitor show` uses rich).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def without(*modules: str) -> Iterator[None]:
    """Within the block, `import` of any of `modules` raises ImportError (unless already imported)."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not available"
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
