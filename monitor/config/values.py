"""Checks of single values in sources.toml: intervals, numbers, strings, user ids, URLs, CSS."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cssselect import SelectorError
from lxml.cssselect import CSSSelector

from monitor.config.keys import INTERVAL, UNIT_SECONDS
from monitor.errors import ConfigError


def parse_interval(value: Any) -> float | None:
    """'90s', '15m', '6h', '1d' or a number of seconds; None when it is not one of those."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = finite(value)
        return seconds if seconds is not None and seconds > 0 else None
    match = INTERVAL.match(str(value))
    if not match or float(match[1]) <= 0:
        return None
    return float(match[1]) * UNIT_SECONDS[match[2]]


def typed_values(name: str, where: str, raw: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """A table of scalar settings, each checked against its expected type."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = keys.get(key)
        if kind is None:
            raise ConfigError(name, where, key, "unknown key")
        if kind == "interval":
            values[key] = interval_seconds(name, where, value, key=key)
        elif kind == "duration":  # an interval that may be 0: "never"
            zero = isinstance(value, int | float | str) and re.fullmatch(
                r"\s*0+(\.0*)?\s*[smhd]?\s*", str(value)
            )
            values[key] = 0.0 if zero else interval_seconds(name, where, value, key=key, zero_ok=True)
        elif kind == "user ids":
            values[key] = _user_ids(name, where, key, value)
        elif kind is str:
            values[key] = string_value(name, where, key, value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(name, where, key, "must be true or false")
            values[key] = value
        else:
            number = None if isinstance(value, bool) else finite(value)
            if number is None or number < 0:
                raise ConfigError(name, where, key, "must be a non-negative number")
            values[key] = kind(value)
    return values


def _user_ids(name: str, where: str, key: str, value: Any) -> tuple[int, ...]:
    """Telegram user ids (numbers, not @usernames: a username can be given up and taken by someone else)."""
    ids = value if isinstance(value, list) else None
    if ids is None or not all(_is_user_id(v) for v in ids):
        raise ConfigError(name, where, key, "must be a list of Telegram user ids (numbers such as 123456789)")
    return tuple(int(v) for v in ids)


def _is_user_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return isinstance(value, str) and value.strip().isdigit() and value.strip().isascii()


def finite(value: Any) -> float | None:
    """A number as a float, or None for anything else, inf, nan, or too large for a float."""
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def url_problem(url: str) -> str:
    """What makes `url` one no request can be sent to ('' if nothing): caught here, it would
    otherwise surface mid-round, from deep in the HTTP client."""
    if any(ch.isspace() for ch in url):
        return "must not contain white space (write a space in a path as %20)"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
        host = parts.hostname or ""
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"
        return f"is not a valid URL ({exc})"
    if not host:
        return "has no host name"
    if port == 0:
        return "port 0 is not a port a server listens on"
    if ":" not in host:  # an IPv6 address has no labels
        try:
            host.encode("idna")
        except UnicodeError:
            return f"host name {host!r} is not valid (an empty or over-long part between dots?)"
    return ""


def interval_seconds(
    name: str, where: str, value: Any, at: str = "", key: str = "interval", zero_ok: bool = False
) -> float:
    seconds = parse_interval(value)
    if seconds is None:
        never = " or 0 (never)" if zero_ok else ""
        raise ConfigError(name, where, key, f"{value!r} is not like '90s', '15m', '6h'{never}{at}")
    return seconds


def check_css(name: str, where: str, key: str, value: Any, at: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(name, where, key, f"must be a CSS selector{at}")
    problem = _css_problem(value)
    if problem:
        raise ConfigError(name, where, key, f"invalid CSS {value!r}: {problem}{at}")


@lru_cache(maxsize=1024)
def _css_problem(css: str) -> str:
    """'' when `css` compiles. Cached: the listings of one site share their selectors, and
    compiling one costs ~0.1 ms, a tenth of a second per thousand sources at every start."""
    try:
        CSSSelector(css)
    except SelectorError as exc:
        return str(exc)
    return ""


def string_value(name: str, where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, where, key, "must be a string")
    return value


def string_list(name: str, where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(name, where, key, "must be a list of non-empty strings")
    return tuple(value)
