"""The floor: a bare async httpx client doing only the GETs, with the monitor's per-host limit.

    python3 bench/floor.py URLS_FILE [--per-host 2]

One client with keep-alive for the whole round (as the monitor's), at most `--per-host` requests
at once to any one host, every body read in full and dropped. Prints the number of pages fetched.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlsplit

import httpx


async def fetch_all(urls: list[str], per_host: int) -> int:
    slots: dict[str, asyncio.Semaphore] = {}
    # One client, as the issue defines the floor; keep-alive for every connection it may hold (at
    # 32, httpcore closed idle connections as soon as 40 were open). The monitor uses one per host.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=20) as client:

        async def get(url: str) -> int:
            slot = slots.setdefault(urlsplit(url).netloc, asyncio.Semaphore(per_host))
            async with slot:
                response = await client.get(url)
                return len(response.content)

        sizes = await asyncio.gather(*(get(url) for url in urls))
    return sum(1 for size in sizes if size)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("urls_file")
    parser.add_argument("--per-host", type=int, default=2)
    args = parser.parse_args()
    with open(args.urls_file, encoding="utf-8") as file:
        urls = [line.strip() for line in file if line.strip()]
    print(asyncio.run(fetch_all(urls, args.per_host)))
