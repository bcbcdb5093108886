"""Performance benchmark: policy-monitor against urlwatch and a bare-fetch floor, on one corpus.

Run from the repository root (needs `pip install -e ".[bench]"`: urlwatch, and py-spy for profile.py):

    python3 bench/perf.py                              # N = 100, 1000, 3000; 5 runs; 50 ms latency
    python3 bench/perf.py --sizes 1000 --runs 7        # one size
    python3 bench/perf.py --latency 0 --validators     # no latency; ETag/Last-Modified on

For each N it starts `bench/server.py` (the corpus on 127.0.0.1 .. 127.0.0.20) and measures three
scenarios, each tool in its own process, whole-process (wall clock; user + sys CPU and peak RSS from
the child's rusage): a cold round (empty state), a no-change round and a round where 10% of the pages
gained one item (both from the state a cold round left). The tools, in a rotating order each run:

- `monitor`:  policy-monitor run --once --all, this checkout's code (PYTHONPATH), console alerts;
- `urlwatch`: urlwatch with the equivalent urls.yaml (css filter on the listing + html2text), its
              own cache database;
- `floor`:    bench/floor.py, only the GETs, one httpx client, the same per-host limit.

Medians go to bench/RESULTS.md (with the targets of issue #8, the machine and the load), every run
to results.json beside it. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from corpus import DATE_CSS, ITEM_CSS, LINK_CSS, LIST_CSS, TITLE_CSS, Corpus  # noqa: E402

SCENARIOS = ("cold", "no-change", "changed")
TOOLS = ("floor", "monitor", "urlwatch")
PER_HOST = 2  # the monitor's default [settings] per_host, used by the floor too
URLWATCH_REPORT = re.compile(r"^\d+\. (NEW|CHANGED|ERROR|UNCHANGED): ", re.M)


@dataclass
class Run:
    n: int
    scenario: str
    tool: str
    wall: float
    cpu: float
    rss_mb: float
    db_bytes: int
    alerts: int
    expected: int
    exact: bool  # the alerts are exactly the expected ones (source and title), not just as many
    code: int


class Workdir:
    """Configs and state for one N: sources.toml, urls.yaml, urlwatch's config, the floor's URLs."""

    def __init__(self, root: Path, corpus: Corpus, port: int, latency: float):
        self.root, self.corpus = root, corpus
        self.config, self.db = root / "sources.toml", root / "state" / "monitor.db"
        self.urls, self.cache = root / "urls.yaml", root / "urlwatch" / "cache.db"
        self.urlwatch_config, self.url_list = root / "urlwatch" / "config.yaml", root / "urls.txt"
        self.baseline = root / "baseline"
        urls = [f"http://{corpus.host(i)}:{port}{corpus.path(i)}" for i in range(corpus.n)]
        self._write(urls, latency)

    def _write(self, urls: list[str], latency: float) -> None:
        shipped = (ROOT / "sources.toml").read_text(encoding="utf-8")
        topics = shipped[shipped.index("[topics.") : shipped.index("[[sources]]")]
        sources = "".join(
            f'\n[[sources]]\nid = "{self.corpus.source_id(i)}"\nregulator = "SFC"\nkind = "html"\n'
            f'url = "{url}"\nitems = "{ITEM_CSS}"\ntitle = "{TITLE_CSS}"\nlink = "{LINK_CSS}"\n'
            f'date = "{DATE_CSS}"\n'
            for i, url in enumerate(urls)
        )
        timeout = max(20, latency * 100)
        settings = f'[settings]\ninterval = "30m"\ntimeout = {timeout}\nper_host = {PER_HOST}\n\n'
        self.config.write_text(settings + topics + sources, encoding="utf-8")
        jobs = "---\n".join(
            f"name: {self.corpus.source_id(i)}\nurl: {url}\nfilter:\n  - css: {LIST_CSS}\n  - html2text\n"
            for i, url in enumerate(urls)
        )
        self.urls.write_text(jobs, encoding="utf-8")
        self.urlwatch_config.parent.mkdir(parents=True, exist_ok=True)
        self.urlwatch_config.write_text(
            "display:\n  new: true\n  error: true\n  unchanged: false\n"
            "report:\n  text:\n    details: true\n    footer: false\n    minimal: false\n"
            "  stdout:\n    enabled: true\n    color: false\n",
            encoding="utf-8",
        )
        self.url_list.write_text("\n".join(urls) + "\n", encoding="utf-8")

    def state_files(self, tool: str) -> list[Path]:
        base = self.db if tool == "monitor" else self.cache
        return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-journal")]

    def reset(self, tool: str, scenario: str) -> None:
        """Cold: no state. Otherwise: the state a cold round left (saved by `keep_baseline`)."""
        for path in self.state_files(tool):
            path.unlink(missing_ok=True)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        if scenario != "cold" and tool != "floor":
            for path in self.state_files(tool):
                saved = self.baseline / tool / path.name
                if saved.exists():
                    shutil.copy(saved, path)

    def keep_baseline(self, tool: str) -> None:
        (self.baseline / tool).mkdir(parents=True, exist_ok=True)
        for path in self.state_files(tool):
            if path.exists():
                shutil.copy(path, self.baseline / tool / path.name)

    def state_bytes(self, tool: str) -> int:
        return sum(p.stat().st_size for p in self.state_files(tool) if p.exists())

    def command(self, tool: str, python: str) -> list[str]:
        if tool == "monitor":
            return [python, "-m", "monitor", "--config", str(self.config), "--db", str(self.db),
                    "run", "--once", "--all"]  # fmt: skip
        if tool == "urlwatch":
            return [python, "-c", "import sys; from urlwatch.cli import main; sys.exit(main())",
                    "--urls", str(self.urls), "--config", str(self.urlwatch_config),
                    "--cache", str(self.cache), "--hooks", str(self.root / "hooks.py")]  # fmt: skip
        return [python, str(BENCH / "floor.py"), str(self.url_list), "--per-host", str(PER_HOST)]


def tool_env(**more: str) -> dict[str, str]:
    """The environment a benchmarked process runs in: this checkout's `monitor` (whatever is
    installed), and no Telegram token (alerts go to the console)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    return {**env, "PYTHONPATH": str(ROOT), **more}


def measure(command: list[str], cwd: Path, out: Path) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds (user + sys) and peak RSS (MB) of one process, and its exit code."""
    env = tool_env(HOME=str(cwd))  # urlwatch keeps a keyring and defaults under HOME
    with open(out, "wb") as stdout, open(out.with_suffix(".err"), "wb") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def monitor_alerts(db: Path, outbox_before: int) -> set[tuple[str, str]]:
    # closed at once: an open reader would keep the monitor's WAL from being checkpointed away
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            """SELECT c.source_id, c.title FROM outbox o JOIN changes c ON c.id = o.change_id
               WHERE o.id > ?""",
            [outbox_before],
        ).fetchall()
    return {(source_id, title) for source_id, title in rows}


def max_outbox(db: Path) -> int:
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]


def one_run(work: Workdir, tool: str, scenario: str, round_: int, python: str) -> Run:
    work.reset(tool, scenario)
    before = work.state_bytes(tool)
    outbox_before = max_outbox(work.db) if tool == "monitor" else 0
    out = work.root / f"{tool}.out"
    wall, cpu, rss, code = measure(work.command(tool, python), work.root, out)
    corpus = work.corpus
    if tool == "monitor":
        got = monitor_alerts(work.db, outbox_before)
        wanted = corpus.expected_alerts(round_)
        alerts, expected, exact = len(got), len(wanted), got == wanted
    elif tool == "urlwatch":
        reported = URLWATCH_REPORT.findall(out.read_text(encoding="utf-8", errors="replace"))
        # urlwatch has no topics: it reports every job on its first run and every changed page.
        alerts = sum(1 for kind in reported if kind in ("NEW", "CHANGED"))
        expected = corpus.n if scenario == "cold" else corpus.expected_changes(round_)
        exact = alerts == expected and "ERROR" not in reported
    else:
        fetched = int(out.read_text().strip() or 0)
        alerts, expected, exact = 0, 0, fetched == corpus.n
    return Run(corpus.n, scenario, tool, wall, cpu, rss, work.state_bytes(tool) - before,
               alerts, expected, exact, code)  # fmt: skip


def set_round(port: int, round_: int) -> None:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/_round/{round_}", method="POST"))


@contextmanager
def serving(corpus: Corpus, args: argparse.Namespace) -> Iterator[int]:
    """bench/server.py serving `corpus` while inside; yields its port."""
    command = [args.python, str(BENCH / "server.py"), "--n", str(corpus.n), "--seed", str(corpus.seed),
               "--latency", str(args.latency)] + (["--validators"] if args.validators else [])  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        ready = server.stdout.readline().split()  # "ready <port>"
        if len(ready) < 2 or not ready[1].isdigit():
            raise SystemExit(f"bench/server.py did not start (exit {server.poll()}); its error is above")
        yield int(ready[1])
    finally:
        server.terminate()
        server.wait()


def bench_size(n: int, args: argparse.Namespace, runs: int, log) -> list[Run]:
    corpus = Corpus(n, args.seed)
    results: list[Run] = []
    with serving(corpus, args) as port, tempfile.TemporaryDirectory(prefix=f"bench-{n}-") as folder:
        work = Workdir(Path(folder), corpus, port, args.latency)
        for scenario in SCENARIOS:
            round_ = 1 if scenario == "changed" else 0
            set_round(port, round_)
            for rep in range(runs):
                order = args.tools[rep % len(args.tools) :] + args.tools[: rep % len(args.tools)]
                for tool in order:
                    run = one_run(work, tool, scenario, round_, args.python)
                    results.append(run)
                    log(run)
                    if scenario == "cold" and tool != "floor":
                        work.keep_baseline(tool)
    return results


def startup(python: str, runs: int) -> float:
    """Median wall seconds of `policy-monitor validate` on the shipped sources.toml."""
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([python, "-m", "monitor", "--config", str(ROOT / "sources.toml"), "validate"],
                       check=True, capture_output=True, env=tool_env())  # fmt: skip
        walls.append(time.monotonic() - started)
    return statistics.median(walls)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor() or "unknown CPU",
    )  # fmt: skip
    memory = next(
        (int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
         if line.startswith("MemTotal")), 0,
    )  # fmt: skip
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory / 1024:.0f} GB RAM; Linux {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--runs", type=int, default=5, help="runs per scenario and tool (median taken)")
    parser.add_argument("--runs-for", action="append", default=[], metavar="N=RUNS",
                        help="fewer (or more) runs for one size, e.g. 3000=3")  # fmt: skip
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--validators", action="store_true", help="the server sends ETag/Last-Modified")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the tools")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = parser.parse_args()
    runs_for = {int(k): int(v) for k, v in (item.split("=") for item in args.runs_for)}

    def log(run: Run) -> None:
        print(f"N={run.n:<5} {run.scenario:<9} {run.tool:<8} wall {run.wall:6.2f}s cpu {run.cpu:6.2f}s "
              f"rss {run.rss_mb:5.0f}MB db +{run.db_bytes / 1024:8.0f}KB alerts {run.alerts}/{run.expected}"
              f"{'' if run.exact else ' MISMATCH'} exit {run.code}", flush=True)  # fmt: skip

    # As installed (pip compiles a package's bytecode), whatever PYTHONDONTWRITEBYTECODE says: ~15 ms
    # of every process start otherwise, which urlwatch, installed, does not pay.
    compileall.compile_dir(ROOT / "monitor", quiet=1)
    started = datetime.now(UTC)
    loads = [f"start {load()}"]
    results: list[Run] = []
    for n in args.sizes:
        results += bench_size(n, args, runs_for.get(n, args.runs), log)
        loads.append(f"after N={n} {load()}")
    validate = startup(args.python, max(args.runs, 5))
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load": loads,
        "latency": args.latency,
        "validators": args.validators,
        "seed": args.seed,
        "runs": {n: runs_for.get(n, args.runs) for n in args.sizes},
        "startup_validate_s": validate,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = args.out.with_name("results.json")  # beside RESULTS.md
    raw.write_text(
        json.dumps({"meta": meta, "runs": [asdict(r) for r in results]}, indent=1) + "\n", encoding="utf-8"
    )
    from report import write_results  # bench/report.py: the table, the ratios, the targets

    write_results(args.out, meta, results)
    print(f"wrote {args.out} and {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
