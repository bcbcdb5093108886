"""One [[sources]] block of sources.toml to a Source: its kind's keys, selectors, API request,
detail pages and working hours."""

from __future__ import annotations

import json
import re
from typing import Any

from monitor.config.keys import (
    COMMON_KEYS,
    DAY_NAMES,
    DETAIL_FIELDS,
    DETAIL_KEYS,
    HOURS,
    KIND_KEYS,
    KINDS,
    LANGUAGES,
    REQUIRED_KIND_KEYS,
    SOURCE_ID,
)
from monitor.config.values import (
    check_css,
    interval_seconds,
    parse_interval,
    string_list,
    string_value,
    url_problem,
)
from monitor.errors import ConfigError
from monitor.models import Settings, Source, Topic, Window


def build_source(
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

    def strings(key: str, default: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
        try:
            return string_list(name, where, key, raw.get(key, list(default)))
        except ConfigError as exc:
            raise fail(key, exc.problem) from None

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
    source_topics = strings("topics", list(topics))
    for topic in source_topics:
        if topic.lower() not in topics:
            raise fail("topics", f"unknown topic {topic!r} (declare it under [topics])")
    interval = settings.interval
    if "interval" in raw:
        interval = interval_seconds(name, where, raw["interval"], at)
    window, off_hours = _window(raw, fail)
    if kind != "json":
        for key in ("items", "title", "link", "date", "select"):
            if key in raw:
                check_css(name, where, key, raw[key], at)
    if "detail_select" in raw:
        check_css(name, where, "detail_select", raw["detail_select"], at)
    language = raw.get("language", "")
    if language not in ("", *LANGUAGES):
        raise fail("language", f"must be one of {', '.join(LANGUAGES)}")
    api = _api(raw, fail) if kind == "json" else {}
    excludes = strings("exclude")
    for css in excludes:
        check_css(name, where, "exclude", css, at)
    patterns = {key: strings(key) for key in ("ignore", "include_titles", "exclude_titles")}
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
        name=string_value(name, where, "name", raw.get("name", "")),
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
        ignore_params=tuple(param.lower() for param in strings("ignore_params")),
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
