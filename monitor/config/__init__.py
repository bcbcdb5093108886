"""Load and validate sources.toml. Every error names the file, the source id and the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from monitor import PROJECT_URL, __version__
from monitor.config.keys import (
    KIND_KEYS,
    MAX_JITTER,
    SETTINGS_KEYS,
    SOURCES_HEADER,
    TABLE_LINE,
    TELEGRAM_KEYS,
    TOPIC_KEYS,
)
from monitor.config.source import build_source
from monitor.config.values import parse_interval, string_list, typed_values
from monitor.errors import ConfigError
from monitor.models import Config, Settings, Source, TelegramSettings, Topic

__all__ = ["KIND_KEYS", "SETTINGS_KEYS", "TELEGRAM_KEYS", "load_config", "parse_interval"]


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
        raise _unknown_top_level(name, sorted(unknown)[0], data, text_lines)
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
        source = build_source(name, raw, index, line, settings, topics, shared)
        if source.id in ids:
            raise ConfigError(name, source.id, "id", f"duplicate source id (line {line})")
        ids.add(source.id)
        sources.append(source)
    telegram = TelegramSettings(
        **typed_values(name, "[telegram]", _table(name, data, "telegram"), TELEGRAM_KEYS)
    )
    return Config(name, settings, topics, tuple(sources), telegram)


def _unknown_top_level(name: str, key: str, data: dict[str, Any], text_lines: list[str]) -> ConfigError:
    """`[topic.x]`, `[[source]]` or a setting above every table, with its line."""
    if isinstance(data[key], dict | list):
        header = re.compile(rf'^\s*\[\[?\s*"?{re.escape(key)}"?\s*[\].]')
        problem = "unknown table (expected [settings], [topics.NAME], [[sources]], [telegram])"
    else:
        header = re.compile(rf'^\s*"?{re.escape(key)}"?\s*=')
        problem = "unknown key outside any table (a setting goes under [settings])"
    line = next((n for n, text in enumerate(text_lines, 1) if header.match(text)), 0)
    return ConfigError(name, "", key, problem + (f" (line {line})" if line else ""))


def _table(name: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(name, "", key, "must be a table")
    return value


def _settings(name: str, raw: dict[str, Any]) -> Settings:
    values = typed_values(name, "[settings]", raw, SETTINGS_KEYS)
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


def _topics(name: str, raw: dict[str, Any]) -> dict[str, Topic]:
    topics: dict[str, Topic] = {}
    for topic_name, table in raw.items():
        where = f"[topics.{topic_name}]"
        if not isinstance(table, dict):
            raise ConfigError(name, where, "", "must be a table with terms = [...]")
        for key in set(table) - TOPIC_KEYS:
            raise ConfigError(name, where, key, "unknown key (expected terms, requires, exclude)")
        terms = string_list(name, where, "terms", table.get("terms"))
        if not terms:
            raise ConfigError(name, where, "terms", "needs at least one term")
        requires = string_list(name, where, "requires", table.get("requires", []))
        exclude = string_list(name, where, "exclude", table.get("exclude", []))
        topics[topic_name.lower()] = Topic(topic_name.lower(), terms, requires, exclude)
    return topics
