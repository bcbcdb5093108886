"""A JSON API listing -> items (the SFC e-Distribution API, the HKMA Open API)."""

from __future__ import annotations

import html
import json
import logging
import re
from datetime import datetime
from typing import Any

from monitor.errors import ExtractError, LayoutChanged
from monitor.extract.keys import item_key, unique_items
from monitor.models import Item, Page, Snapshot, Source
from monitor.normalize import HKT, clean_text, clean_title, parse_date

PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
# An HTML character reference in a JSON title ("HKMA &amp; SFC"): some APIs store titles as HTML.
ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z]+\d*);", re.I)
UNIX_TIME = re.compile(r"(?:\d{10}|\d{13})(?:\.\d+)?")


log = logging.getLogger("monitor.extract")


def extract(source: Source, page: Page) -> Snapshot:
    try:
        data = json.loads(page.text)
    except json.JSONDecodeError as exc:
        raise ExtractError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:  # [[[[... thousands deep: no API answers like this
        raise ExtractError("not JSON this monitor reads (nested too deeply)") from None
    if source.success_path and lookup(data, source.success_path) is not True:
        raise ExtractError(f"the API reported failure ({source.success_path} is not true)")
    records = lookup(data, source.items_path)
    if not isinstance(records, list):
        raise LayoutChanged(f"items_path {source.items_path!r} is not a list in the answer (API changed?)")
    items = [_item(source, record) for record in records if isinstance(record, dict)]
    items = [i for i in items if i.title]
    if not items:
        raise LayoutChanged(f"no record under {source.items_path!r} has a {source.title!r} (API changed?)")
    if source.date and len(items) > 1 and not any(i.date for i in items):  # renamed? its items still count
        log.warning("%s: no record has a %r (API changed?): items without dates", source.id, source.date)
    return Snapshot(kind="items", items=unique_items(items))


def lookup(data: Any, path: str) -> Any:
    """A value by dot path: "result.records", "header.success"."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _item(source: Source, record: dict) -> Item:
    title = clean_title(ENTITY.sub(lambda m: html.unescape(m[0]), str(lookup(record, source.title) or "")))
    link = clean_text(_link(source.link, record))
    reference = str(lookup(record, source.item_id) or "") if source.item_id else ""
    return Item(
        item_key(reference, link, title, source.ignore_params),
        title,
        link,
        _date(lookup(record, source.date) if source.date else None),
    )


def _link(template: str, record: dict) -> str:
    """A field path, or a template such as "https://apps.sfc.hk/...doc?refNo={refNo}"."""
    if not template:
        return ""
    if "{" not in template:
        return str(lookup(record, template) or "")
    values = {name: lookup(record, name) for name in PLACEHOLDER.findall(template)}
    if any(value is None for value in values.values()):
        return ""
    return PLACEHOLDER.sub(lambda m: str(values[m[1]]), template)


def _date(value: Any) -> str:
    """ISO dates stay dates; timestamps become Hong Kong time; other forms as `parse_date` reads them."""
    text = str(value or "").strip()
    if UNIX_TIME.fullmatch(text):  # in seconds or milliseconds, a float in some APIs ("1754215200.0")
        seconds = float(text) / (1000 if len(text.split(".")[0]) == 13 else 1)
        return datetime.fromtimestamp(seconds, HKT).isoformat()
    if len(text) == 8 and text.isdigit():  # 20260803
        try:
            return datetime.strptime(text, "%Y%m%d").date().isoformat()
        except ValueError:
            return text
    if len(text) > 10 and text[:4].isdigit():
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return parse_date(text)
        return (moment.astimezone(HKT) if moment.tzinfo else moment.replace(tzinfo=HKT)).isoformat()
    return parse_date(text)
