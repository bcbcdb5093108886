"""Load and validate sources.toml. Every error names the file, the source id and the key."""

from __future__ import annotations

import json
import math
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cssselect import SelectorError
from lxml.cssselect import CSSSelector

from monitor import PROJECT_URL, __version__
from monitor.errors import ConfigError
from monitor.models import Config, Settings, Source, TelegramSettings, Topic, Window

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SOURCES_HEADER = re.compile(r"^\s*\[\[\s*sources\s*\]\]\s*(#.*)?$")
TABLE_LINE = re.compile(r"^\s*\[\[?\s*[A-Za-z\"]")  # a [table] or [[array]] header: a block ends
INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_JITTER = 0.5
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
KINDS = ("rss", "html", "page", "json")
DETAIL_FIELDS = ("id", "link", "key")

COMMON_KEYS = {
    "id",
    "regulator",
    "kind",
    "url",
    "topics",
    "interval",
    "name",
    "language",
    "hours",
    "days",
    "off_hours_interval",
}
DETAIL_KEYS = {"detail", "detail_select", "detail_field", "detail_pdfs"}
LANGUAGES = ("en", "zh")
KIND_KEYS = {
    "rss": {"include_titles", "exclude_titles", *DETAIL_KEYS},
    "html": {"items", "title", "link", "date", "include_titles", "exclude_titles", *DETAIL_KEYS},
    "page": {"select", "exclude", "ignore"},
    "json": {
        "method",
        "body",
        "params",
        "items_path",
        "item_id",
        "title",
        "date",
        "link",
        "success_path",
        "include_titles",
        "exclude_titles",
        *DETAIL_KEYS,
    },
}
REQUIRED_KIND_KEYS = {
    "rss": (),
    "html": ("items", "title", "link"),
    "page": (),
    "json": ("items_path", "title"),
}
SETTINGS_KEYS = {
    "interval": "interval",
    "timeout": float,
    "user_agent": str,
    "max_bytes": int,
    "retries": int,
    "retry_backoff": float,
    "max_retry_after": float,
    "per_host": int,
    "max_redirects": int,
    "detail_limit": int,
    "document_max_bytes": int,
    "document_recheck": "duration",
    "duplicate_window": "interval",
    "jitter": float,
    "host_spacing": float,
    "catch_up": float,
    "allow_private_redirects": bool,
    "processes": int,
}
TOPIC_KEYS = {"terms", "requires", "exclude"}
TELEGRAM_KEYS = {
    "ops_chat": str,
    "health_after": int,
    "digest_after": int,
    "delayed_after": "interval",
    "private_interval": float,
    "group_interval": float,
    "global_interval": float,
    "admins": "user ids",
}


def parse_interval(value: Any) -> float | None:
    """'90s', '15m', '6h', '1d' or a number of seconds; None when it is not one of those."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = _finite(value)
        return seconds if seconds is not None and seconds > 0 else None
    match = INTERVAL.match(str(value))
    if not match or float(match[1]) <= 0:
        return None
    return float(match[1]) * UNIT_SECONDS[match[2]]


def load_config(path: str | Path) -> Config:
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "", "file not found (set --config or MONITOR_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, "", "", f"cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, "", "", f"not valid TOML: {exc}") from None
    text_lines = text.splitlines()
    try:
        return _build(name, data, text_lines)
    except ConfigError as exc:
        raise _at_key_line(exc, text_lines) from None


def _at_key_line(exc: ConfigError, text_lines: list[str]) -> ConfigError:
    """The error pointing at the line of its key: "(line N)" of a source's header becomes the line
    of the key inside the block, and an error in a table ([settings], [topics.x]) gets one."""
    header = re.search(r" \(line (\d+)\)$", exc.problem)
    if header:
        start, problem = int(header[1]), exc.problem[: header.start()]
    else:
        table = re.fullmatch(r"\[([\w.\-]+)\]", exc.where)
        table_line = re.compile(rf"^\s*\[\s*{re.escape(table[1])}\s*\]") if table else None
        found = [n for n, line in enumerate(text_lines, 1) if table_line and table_line.match(line)]
        if not found:
            return exc
        start, problem = found[0], exc.problem
    line = _key_line(text_lines, start, exc.key) if exc.key else 0
    return ConfigError(exc.path, exc.where, exc.key, f"{problem} (line {line or start})")


def _key_line(text_lines: list[str], header: int, key: str) -> int:
    """The line of `key = ...` in the table whose header is on line `header` (0 if not there)."""
    assignment = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
    for index in range(header, len(text_lines)):  # 1-based header: the index of the line after it
        if TABLE_LINE.match(text_lines[index]):
            break
        if assignment.match(text_lines[index]):
            return index + 1
    return 0


def _build(name: str, data: dict[str, Any], text_lines: list[str]) -> Config:
    lines = [n for n, line in enumerate(text_lines, 1) if SOURCES_HEADER.match(line)]  # each block's
    unknown = set(data) - {"settings", "topics", "sources", "telegram"}
    if unknown:
        raise ConfigError(name, "", sorted(unknown)[0], "unknown table")
    settings = _settings(name, _table(name, data, "settings"))
    topics = _topics(name, _table(name, data, "topics"))
    if not topics:
        raise ConfigError(name, "", "topics", "no [topics.NAME] declared: nothing could ever alert")
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list) or not raw_sources:
        raise ConfigError(name, "", "sources", "no [[sources]] declared")
    sources: list[Source] = []
    ids: set[str] = set()
    # One object for each value repeated across sources (thousands of sources name a handful of
    # regulators, selectors and topic lists): ~0.5 KB less per source for as long as the run lasts.
    shared: dict[Any, Any] = {}
    for index, raw in enumerate(raw_sources):
        line = lines[index] if index < len(lines) else 0
        if isinstance(raw, dict):
            raw = {
                key: shared.setdefault(value, value) if isinstance(value, str) else value
                for key, value in raw.items()
            }
        source = _source(name, raw, index, line, settings, topics, shared)
        if source.id in ids:
            raise ConfigError(name, source.id, "id", f"duplicate source id (line {line})")
        ids.add(source.id)
        sources.append(source)
    telegram = TelegramSettings(**_typed(name, "[telegram]", _table(name, data, "telegram"), TELEGRAM_KEYS))
    return Config(name, settings, topics, tuple(sources), telegram)


def _table(name: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(name, "", key, "must be a table")
    return value


def _settings(name: str, raw: dict[str, Any]) -> Settings:
    values = _typed(name, "[settings]", raw, SETTINGS_KEYS)
    values.setdefault("user_agent", f"hk-policy-monitor/{__version__} (+{PROJECT_URL})")
    if values.get("timeout", 1) <= 0:
        raise ConfigError(name, "[settings]", "timeout", "must be more than 0 (seconds per request)")
    for key in ("max_bytes", "document_max_bytes"):
        if key in values and values[key] < 1024:
            raise ConfigError(name, "[settings]", key, "must be at least 1024 (bytes)")
    if values.get("jitter", 0) > MAX_JITTER:
        raise ConfigError(
            name, "[settings]", "jitter", f"must be at most {MAX_JITTER} (a fraction of the interval)"
        )
    return Settings(**values)


def _typed(name: str, where: str, raw: dict[str, Any], keys: dict[str, Any]) -> dict[str, Any]:
    """A table of scalar settings, each checked against its expected type."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = keys.get(key)
        if kind is None:
            raise ConfigError(name, where, key, "unknown key")
        if kind == "interval":
            values[key] = _interval(name, where, value, key=key)
        elif kind == "duration":  # an interval that may be 0: "never"
            zero = isinstance(value, int | float | str) and re.fullmatch(
                r"\s*0+(\.0*)?\s*[smhd]?\s*", str(value)
            )
            values[key] = 0.0 if zero else _interval(name, where, value, key=key, zero_ok=True)
        elif kind == "user ids":
            values[key] = _user_ids(name, where, key, value)
        elif kind is str:
            values[key] = _string(name, where, key, value)
        elif kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(name, where, key, "must be true or false")
            values[key] = value
        else:
            number = None if isinstance(value, bool) else _finite(value)
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


def _finite(value: Any) -> float | None:
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


def _topics(name: str, raw: dict[str, Any]) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    for topic_name, table in raw.items():
        where = f"[topics.{topic_name}]"
        if not isinstance(table, dict):
            raise ConfigError(name, where, "", "must be a table with terms = [...]")
        for key in set(table) - TOPIC_KEYS:
            raise ConfigError(name, where, key, "unknown key (expected terms, requires, exclude)")
        terms = _strings(name, where, "terms", table.get("terms"))
        if not terms:
            raise ConfigError(name, where, "terms", "needs at least one term")
        requires = _strings(name, where, "requires", table.get("requires", []))
        exclude = _strings(name, where, "exclude", table.get("exclude", []))
        topics[topic_name.lower()] = Topic(topic_name.lower(), terms, requires, exclude)
    return topics


def _source(
    name: str,
    raw: Any,
    index: int,
    line: int,
    settings: Settings,
    topics: dict[str, Topic],
    shared: dict[Any, Any],
) -> Source:
    if not isinstance(raw, dict):
        raise ConfigError(name, f"[[sources]] #{index + 1}", "", "must be a table")
    sid = raw.get("id")
    where = str(sid) if isinstance(sid, str) and sid else f"[[sources]] #{index + 1}"
    at = f" (line {line})" if line else ""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(name, where, key, problem + at)

    if not isinstance(sid, str) or not sid:
        raise fail("id", "required; lowercase letters, digits and '-'")
    if not SOURCE_ID.match(sid):
        raise fail("id", f"{sid!r} has other characters than lowercase letters, digits and '-'")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise fail("kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
    for key in raw:
        if key not in COMMON_KEYS | KIND_KEYS[kind]:
            raise fail(key, f'unknown key for kind = "{kind}"')
    for key in ("regulator", "url", *REQUIRED_KIND_KEYS[kind]):
        if key not in raw:
            raise fail(key, "required")
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise fail(key, "must be a non-empty string")
    url = raw["url"].strip()
    if not re.match(r"^https?://[^/\s]+", url):
        raise fail("url", "must be an http:// or https:// URL")
    problem = url_problem(url)
    if problem:
        raise fail("url", problem)
    source_topics = _strings(name, where, "topics", raw.get("topics", list(topics)))
    for topic in source_topics:
        if topic.lower() not in topics:
            raise fail("topics", f"unknown topic {topic!r} (declare it under [topics])")
    interval = settings.interval
    if "interval" in raw:
        interval = _interval(name, where, raw["interval"], at)
    window, off_hours = _window(raw, fail)
    if kind != "json":
        for key in ("items", "title", "link", "date", "select"):
            if key in raw:
                _css(name, where, key, raw[key], at)
    if "detail_select" in raw:
        _css(name, where, "detail_select", raw["detail_select"], at)
    language = raw.get("language", "")
    if language not in ("", *LANGUAGES):
        raise fail("language", f"must be one of {', '.join(LANGUAGES)}")
    api = _api(raw, fail) if kind == "json" else {}
    excludes = _strings(name, where, "exclude", raw.get("exclude", []))
    for css in excludes:
        _css(name, where, "exclude", css, at)
    patterns = {
        key: _strings(name, where, key, raw.get(key, []))
        for key in ("ignore", "include_titles", "exclude_titles")
    }
    for key, values in patterns.items():
        for pattern in values:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise fail(key, f"invalid regular expression {pattern!r}: {exc}") from None
    topic_names = tuple(t.lower() for t in source_topics)
    return Source(
        id=sid,
        regulator=raw["regulator"].strip(),
        kind=kind,
        url=url,
        topics=shared.setdefault(topic_names, topic_names),
        interval=interval,
        name=_string(name, where, "name", raw.get("name", "")),
        window=window,
        off_hours_interval=off_hours,
        items=raw.get("items", ""),
        title=raw.get("title", ""),
        link=raw.get("link", ""),
        date=raw.get("date", ""),
        select=raw.get("select", "body"),
        exclude=excludes,
        ignore=patterns["ignore"],
        include_titles=patterns["include_titles"],
        exclude_titles=patterns["exclude_titles"],
        language=language,
        **api,
        **_detail(raw, fail),
    )


def _detail(raw: dict[str, Any], fail) -> dict[str, Any]:
    """How a new item is followed to its text: its link, or a URL template over its fields."""
    detail = raw.get("detail", "")
    if not isinstance(detail, str) or (
        detail and detail != "link" and not re.match(r"^https?://[^/\s]+", detail)
    ):
        raise fail("detail", '"link" or an http(s) URL template such as "https://.../doc?refNo={id}"')
    for field_name in re.findall(r"\{(\w*)\}", detail):
        if field_name not in DETAIL_FIELDS:
            raise fail("detail", f"unknown field {{{field_name}}} (use {', '.join(DETAIL_FIELDS)})")
    if "detail_field" in raw and not isinstance(raw["detail_field"], str):
        raise fail("detail_field", 'must be a string (a dot path such as "html")')
    pdfs = raw.get("detail_pdfs", 2)
    if isinstance(pdfs, bool) or not isinstance(pdfs, int) or pdfs < 0:
        raise fail("detail_pdfs", "must be a whole number (0 reads no linked PDFs)")
    for key in DETAIL_KEYS - {"detail"}:
        if key in raw and not detail:
            raise fail(key, 'needs detail = "link" or a detail URL template')
    return {
        "detail": detail,
        "detail_select": raw.get("detail_select", ""),
        "detail_field": raw.get("detail_field", ""),
        "detail_pdfs": pdfs,
    }


def _api(raw: dict[str, Any], fail) -> dict[str, Any]:
    """The request and field mapping of a JSON API source."""
    method = str(raw.get("method", "GET")).upper()
    if method not in ("GET", "POST"):
        raise fail("method", "must be GET or POST")
    body, params = raw.get("body"), raw.get("params", {})
    if body is not None and not isinstance(body, dict):
        raise fail("body", "must be a table (sent as the JSON body)")
    if not isinstance(params, dict):
        raise fail("params", "must be a table of query parameters")
    for key in ("item_id", "date", "link", "success_path"):
        if key in raw and not isinstance(raw[key], str):
            raise fail(key, "must be a string")
    return {
        "method": method,
        "body": json.dumps(body, ensure_ascii=False) if body is not None else "",
        "params": tuple((str(k), str(v)) for k, v in params.items()),
        "items_path": raw["items_path"],
        "item_id": raw.get("item_id", ""),
        "success_path": raw.get("success_path", ""),
    }


def _interval(
    name: str, where: str, value: Any, at: str = "", key: str = "interval", zero_ok: bool = False
) -> float:
    seconds = parse_interval(value)
    if seconds is None:
        never = " or 0 (never)" if zero_ok else ""
        raise ConfigError(name, where, key, f"{value!r} is not like '90s', '15m', '6h'{never}{at}")
    return seconds


def _window(raw: dict[str, Any], fail) -> tuple[Window | None, float]:
    """Working hours: `hours` (Hong Kong time) on `days` use `interval`; other times `off_hours_interval`."""
    if "hours" not in raw:
        for key in ("days", "off_hours_interval"):
            if key in raw:
                raise fail(key, 'needs hours = "HH:MM-HH:MM" (the working hours it goes with)')
        return None, 0.0
    match = HOURS.match(raw["hours"]) if isinstance(raw["hours"], str) else None
    start = int(match[1]) * 60 + int(match[2]) if match else -1
    end = int(match[3]) * 60 + int(match[4]) if match else -1
    if not match or max(int(match[2]), int(match[4])) > 59 or not 0 <= start < 1440 or not 0 <= end <= 1440:
        raise fail("hours", f'must be like "08:00-22:00" (Hong Kong time), not {raw["hours"]!r}')
    end = end or 1440  # "22:00-00:00": until midnight
    if start == end % 1440:
        raise fail("hours", "start and end are the same time (leave hours out to poll at one interval)")
    days = _days(raw.get("days", "mon-fri"))
    if days is None:
        raise fail("days", f'must be days like "mon-fri" or "mon,wed,fri", not {raw["days"]!r}')
    if "off_hours_interval" not in raw:
        raise fail("off_hours_interval", "required with hours (the interval outside those hours)")
    off_hours = parse_interval(raw["off_hours_interval"])
    if off_hours is None:
        raise fail("off_hours_interval", f"{raw['off_hours_interval']!r} is not like '90s', '15m', '6h'")
    return Window(days, start, end), off_hours


def _days(value: Any) -> frozenset[int] | None:
    """'mon-fri', 'sat,sun', 'mon-wed,fri' -> weekday numbers (Monday = 0); None when malformed."""
    if not isinstance(value, str) or not value.strip():
        return None
    days: set[int] = set()
    for part in value.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            return None
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _css(name: str, where: str, key: str, value: Any, at: str) -> None:
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


def _string(name: str, where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, where, key, "must be a string")
    return value


def _strings(name: str, where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(name, where, key, "must be a list of non-empty strings")
    return tuple(value)
