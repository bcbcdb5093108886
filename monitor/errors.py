"""Typed errors. Each message says what went wrong and, where it helps, what to do next."""


class MonitorError(Exception):
    """Base of every error the monitor reports to its user."""


class ConfigError(MonitorError):
    """sources.toml is invalid; the message names the file, the source id and the key."""

    def __init__(self, path: str, where: str, key: str, problem: str):
        self.path, self.where, self.key, self.problem = path, where, key, problem
        parts = [p for p in (path, where, key) if p]
        super().__init__(": ".join([*parts, problem]))


class SourceError(MonitorError):
    """One source failed this round; the round goes on without it."""


class FetchError(SourceError):
    """The HTTP request failed: network, status, size, content type or a soft 404."""


class ExtractError(SourceError):
    """The body could not be read as the configured kind (malformed feed, no HTML)."""


class LayoutChanged(ExtractError):
    """A selector matched nothing: the site's layout probably changed; the old snapshot is kept."""


class SuspiciousContent(ExtractError):
    """The content changed implausibly (most of a listing gone at once): the old snapshot is kept."""


class StoreError(MonitorError):
    """The state database cannot be opened or written."""


class UnknownChange(MonitorError):
    """A change id that is not in the change log."""


class UnknownSource(MonitorError):
    """A source id that is not in the config."""


class UsageError(MonitorError):
    """A command-line value the command cannot use (a malformed date, a missing token)."""


class OutputError(UsageError):
    """An --out path the command cannot write to: names the path, the reason and what --out wants."""

    def __init__(self, path: object, exc: OSError, wants: str):
        reason = (exc.strerror or str(exc)).lower()
        super().__init__(f"--out {path}: cannot write there: {reason} ({wants})")


class InvalidTransition(MonitorError):
    """A review state that cannot follow the change's current state."""
