"""The benchmark's site: the corpus served on 127.0.0.1 .. 127.0.0.20 with a per-request latency.

    python3 bench/server.py --n 1000 [--seed 8] [--latency 0.05] [--validators] [--port 0]

Prints `ready PORT` once it listens. HTTP/1.1 with keep-alive and Content-Length, like a regulator's
site. `GET /listing/I.html` is page I of the current round; `POST /_round/R` switches the round (the
benchmark driver's control). With `--validators` pages carry an ETag and Last-Modified and answer a
matching If-None-Match with 304; without it (the default, like the SFC and HKMA) they carry neither.
Each response waits `--latency` seconds first (a remote site's round trip), without holding a core.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from corpus import HOSTS, TIMESTAMP, TOKEN, Corpus

LISTING = re.compile(rb"^/listing/(\d+)\.html$")
ROUND = re.compile(rb"^/_round/(\d+)$")
LAST_MODIFIED = "Fri, 31 Jul 2026 0{round}:00:00 GMT"


class Site:
    def __init__(self, corpus: Corpus, latency: float, validators: bool):
        self.corpus, self.latency, self.validators = corpus, latency, validators
        self.round = 0
        self._parts: dict[tuple[int, int], list[bytes]] = {}

    def parts(self, i: int) -> list[bytes]:
        """The page split around its noise: [text, noise, text, noise, ...], built once per round."""
        latest = max((r for r in range(1, self.round + 1) if i in self.corpus.changed_in(r)), default=0)
        key = (i, latest)
        if key not in self._parts:
            text = self.corpus.template(i, latest)
            pieces = re.split(f"({re.escape(TIMESTAMP)}|{re.escape(TOKEN)})", text)
            self._parts[key] = [p.encode("utf-8") for p in pieces]
        return self._parts[key]

    def body(self, i: int) -> bytes:
        now = datetime.now(UTC).isoformat(timespec="microseconds").encode()
        token = secrets.token_hex(16).encode()
        noise = {TIMESTAMP.encode(): now, TOKEN.encode(): token}
        return b"".join(noise.get(p, p) for p in self.parts(i))

    async def respond(self, method: bytes, path: bytes, headers: dict[bytes, bytes]) -> bytes:
        control = ROUND.match(path)
        if method == b"POST" and control:
            self.round = int(control[1])
            for i in self.corpus.changed_in(self.round):
                self.parts(i)  # built now, not during the measured round
            return _response(200, b"round %d\n" % self.round, {})
        page = LISTING.match(path)
        if method != b"GET" or not page or int(page[1]) >= self.corpus.n:
            return _response(404, b"<html><title>Not found</title></html>", {"Content-Type": "text/html"})
        i = int(page[1])
        if self.latency:
            await asyncio.sleep(self.latency)
        extra = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache, no-store"}
        if self.validators:
            etag = self.corpus.etag(i, self.round)
            extra = {**extra, "Cache-Control": "no-cache", "ETag": etag}
            extra["Last-Modified"] = LAST_MODIFIED.format(round=self.round)
            if headers.get(b"if-none-match", b"").decode() == etag:
                return _response(304, b"", extra)
        return _response(200, self.body(i), extra)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0") or 0)
                if length:
                    await reader.readexactly(length)
                writer.write(await self.respond(method, path.split(b"?")[0], headers))
                await writer.drain()
                if headers.get(b"connection", b"").lower() == b"close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def main(args: argparse.Namespace) -> None:
    site = Site(Corpus(args.n, args.seed), args.latency, args.validators)
    for i in range(args.n):  # every page built before anyone measures
        site.parts(i)
    servers = []
    first = await asyncio.start_server(site.serve, "127.0.0.1", args.port, backlog=1024)
    port = first.sockets[0].getsockname()[1]
    servers.append(first)
    for host in range(2, HOSTS + 1):
        servers.append(await asyncio.start_server(site.serve, f"127.0.0.{host}", port, backlog=1024))
    print(f"ready {port}", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--validators", action="store_true", help="send ETag/Last-Modified, answer 304")
    parser.add_argument("--port", type=int, default=0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
