"""What sources.toml may hold: its tables, each kind's keys and the forms of their values."""

from __future__ import annotations

import re

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
    "rss": {"include_titles", "exclude_titles", "ignore_params", *DETAIL_KEYS},
    "html": {
        "items",
        "title",
        "link",
        "date",
        "include_titles",
        "exclude_titles",
        "ignore_params",
        *DETAIL_KEYS,
    },
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
        "ignore_params",
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
    "group_admins_only": bool,
}
