"""The store's notion of now: UTC, ISO 8601, to the second."""

from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
