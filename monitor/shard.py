"""`run --shard i/n`: a deterministic share of the sources, for several processes side by side.

A source belongs to the shard that scores highest for it (rendezvous hashing of its id): every
source is in exactly one shard, the same one on every machine and every run, and going from n to
n + 1 shards moves only about 1/(n + 1) of the sources (their state starts over in the new shard).
"""

from __future__ import annotations

import argparse
import hashlib
import re
from dataclasses import replace

from monitor.errors import UsageError
from monitor.models import Config

SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3): the second of three shards (1-based)."""
    match = SHARD.match(text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard i/n with 1 <= i <= n (e.g. 2/3)")
    return int(match[1]), int(match[2])


def shard_of(source_id: str, count: int) -> int:
    """The shard (1..count) that owns `source_id`."""
    return max(range(1, count + 1), key=lambda k: hashlib.sha256(f"{k}:{source_id}".encode()).digest())


def select_shard(config: Config, index: int, count: int) -> Config:
    """The config with only the sources shard `index` of `count` owns."""
    owned = tuple(s for s in config.sources if shard_of(s.id, count) == index)
    if not owned:
        raise UsageError(
            f"shard {index}/{count} owns none of the {len(config.sources)} sources in {config.path}: "
            "use fewer shards"
        )
    return replace(config, sources=owned)
