"""Snapshots to and from JSON (the store compresses it)."""

from __future__ import annotations

import json

from monitor.models import Item, Snapshot


def encode_snapshot(snapshot: Snapshot) -> bytes:
    if snapshot.kind == "text":
        data: dict = {"text": snapshot.text}
    else:
        data = {"items": [[i.key, i.title, i.link, i.date, i.text] for i in snapshot.items]}
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def decode_snapshot(kind: str, title: str, digest: str, encoded: bytes) -> Snapshot:
    data = json.loads(encoded)
    if kind == "text":
        return Snapshot(kind="text", text=data["text"], title=title, hash=digest)
    items = tuple(Item(*row) for row in data["items"])
    return Snapshot(kind="items", items=items, title=title, hash=digest)
