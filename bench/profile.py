"""Where a round's CPU goes: a first (cold), a no-change and a 10%-changed round, sampled by py-spy.

Run from the repository root (needs `pip install -e ".[bench]"`):

    python3 bench/profile.py                # N = 1000, 50 ms latency; writes bench/PROFILE.md
    python3 bench/profile.py --n 3000

The corpus and server are bench/perf.py's, and each round runs as there (`run --once --all`; the
first round split over two processes, whose child py-spy follows). Each round runs twice from the
same state: as it is, for its CPU (whole-process rusage), and under py-spy, for the shares of it.
py-spy samples every process's stacks 1,000 times a second from outside, skipping threads that
wait (in epoll, say), and time in a C function (lxml's parse, bytes.find, SQLite) counts for the
Python line that called it. A profiler inside the process slows the Python code it hooks and not
the C code: pyinstrument, tried first, gave the noise scan's bytes.find 2.7 times the 0.26 s a
timer around it measured. Each sample goes to the innermost of its frames that belongs to a stage
below. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import compileall
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from corpus import Corpus  # noqa: E402
from perf import Workdir, load, machine, measure, serving, set_round, tool_env  # noqa: E402

REQUEST = r"/(httpx|httpcore|h11|anyio|ssl)|/monitor/network\.py:|/asyncio/(streams|selector_events)\.py:"
# (stage, pattern on "/file:function"), tried on a sample's frames from the innermost out
STAGES = [
    # a module's own top-level code is its import (the program's __main__ aside)
    # (nor a spawned child's bootstrap, `python -c "...spawn_main..."`: its frame is <string>'s)
    ("start-up: imports", r"^/<frozen importlib|(?<!__main__\.py)(?<!<string>):<module>$"),
    ("start-up: sources.toml", r"/monitor/config/|/tomllib/"),
    ("parse (lxml)", r"/monitor/extract/dom\.py:_parse$|/lxml/"),
    ("extract: items, text, region digest", r"/monitor/extract/|/monitor/normalize\.py:"),
    ("noise check and noise-free digest", r"/monitor/noise\.py:"),
    ("store: SQLite, zstd, snapshot JSON", r"/monitor/store/|/sqlite_utils/"),
    ("classify and diff", r"/monitor/(classify|diff)\.py:"),
    ("log lines", r"/logging/|/monitor/(logs|childlogs)\.py:"),
    ("request: httpx, httpcore, h11, streams", REQUEST),
    ("fetch.py: headers, raw sha256, decode", r"/monitor/(fetch|charset|answers)\.py:"),
    ("round bookkeeping and the event loop", r"/monitor/|/asyncio/"),
]
COMPILED = [(stage, re.compile(pattern)) for stage, pattern in STAGES]
ROUNDS = (
    ("cold", "First round (every page new)"),
    ("no-change", "No-change round"),
    ("changed", "Round where 10% of the pages gained an item"),
)
OTHER = "other (interpreter start and exit, multiprocessing)"
PROCESS = re.compile(r'(?:^|;)process \d+:"')  # its command line may hold a ";"
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):\d+\)$")  # py-spy's "function (file:line)"


class Profile:
    """py-spy's raw output (collapsed stacks) summed by stage, by function and by process."""

    def __init__(self, raw: str):
        self.by_stage, self.by_function, self.by_process = Counter(), Counter(), Counter()
        for line in raw.splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            calls = [(m["file"], m["function"]) for f in stack.split(";") if (m := FRAME.match(f))]
            samples = int(count)
            self.by_process["parent" if len(PROCESS.findall(stack)) <= 1 else "children"] += samples
            self.by_stage[_stage(calls)] += samples
            if calls:
                self.by_function[f"{calls[-1][1]} ({calls[-1][0]})"] += samples

    @property
    def samples(self) -> int:
        return sum(self.by_stage.values())


def _stage(calls: list[tuple[str, str]]) -> str:
    for file, function in reversed(calls):
        key = f"/{file.lstrip('/')}:{function}"
        for stage, pattern in COMPILED:
            if pattern.search(key):
                return stage
    return OTHER


def py_spy(python: str) -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(python).parent))
    if not found:
        raise SystemExit('py-spy is not installed: pip install -e ".[bench]"')
    return found


def profile_round(work: Workdir, name: str, python: str, spy: str, out: Path) -> Profile:
    raw = out / f"{name}.txt"
    command = [spy, "record", "--rate", "1000", "--nonblocking", "--subprocesses", "--format", "raw",
               "--output", str(raw), "--", python, "-m", "monitor", "--config", str(work.config),
               "--db", str(work.db), "run", "--once", "--all"]  # fmt: skip
    done = subprocess.run(command, cwd=work.root, env=tool_env(), capture_output=True, text=True)
    if done.returncode != 0 or not raw.exists():  # py-spy needs ptrace (a container: SYS_PTRACE)
        raise SystemExit(f"py-spy failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    n = work.corpus.n  # py-spy exits 0 whatever the round does: its summary says how it went
    if f"{n} of {n} sources polled, 0 failed" not in done.stdout + done.stderr:
        raise SystemExit(f"the profiled {name} round did not poll every source:\n{done.stdout[-2000:]}")
    return Profile(raw.read_text(encoding="utf-8"))


def section(title: str, profile: Profile, plain: tuple[float, float], n: int, top: int) -> list[str]:
    """The shares of the samples, and what they come to of the CPU the round took unprofiled."""
    total, (wall, cpu) = profile.samples, plain
    processes = ", ".join(f"{name} {count / total:.0%}" for name, count in sorted(profile.by_process.items()))
    lines = [
        f"## {title}",
        "",
        f"Unprofiled: {wall:.2f} s wall, {cpu:.2f} s of CPU (user + sys, all processes). "
        f"Profiled: {total:,} samples ({processes}).",
        "",
        "| stage | share of the samples | ms of CPU per source |",
        "|---|---|---|",
    ]
    for stage, samples in profile.by_stage.most_common():
        lines.append(f"| {stage} | {samples / total:.1%} | {samples / total * cpu / n * 1000:.2f} |")
    lines += ["", f"The {top} functions with the most samples of their own (C calls in them included):", "",
              "| function | share |", "|---|---|"]  # fmt: skip
    for function, samples in profile.by_function.most_common(top):
        lines.append(f"| `{function}` | {samples / total:.1%} |")
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="listings in the corpus (default 1000)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request (default 0.05)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--top", type=int, default=15, help="functions listed per round (default 15)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs the monitor")
    parser.add_argument("--out", type=Path, default=BENCH / "PROFILE.md")
    args = parser.parse_args()
    args.validators = False  # as the SFC and the HKMA: every round gets whole bodies
    spy = py_spy(args.python)
    compileall.compile_dir(ROOT / "monitor", quiet=1)  # as installed, and as bench/perf.py measures
    corpus = Corpus(args.n, args.seed)
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = [
        "# Profile: where the CPU of a round of policy-monitor goes",
        "",
        f"- Date: {started}; machine: {machine()}; load at start {load()}.",
        f"- `python3 bench/profile.py --n {args.n}` (see its docstring): bench/perf.py's corpus, "
        f"{args.n:,} listings of ~100 KB with per-request noise, {args.latency * 1000:.0f} ms per request, "
        "`per_host = 2` over 20 hosts; py-spy sampling every process 1,000 times a second.",
        "- Each round runs twice from the same state: as it is, for its CPU (whole-process rusage), "
        "and under py-spy, for the shares of that CPU. py-spy counts a thread that is running or "
        "waiting for a core, so a round's samples exceed its CPU milliseconds where its processes "
        "and py-spy compete for the two cores: read the shares, not the counts, and the ms to ~10%.",
        "",
    ]
    with serving(corpus, args) as port, tempfile.TemporaryDirectory(prefix="profile-") as folder:
        work = Workdir(Path(folder), corpus, port, args.latency)
        for name, title in ROUNDS:
            set_round(port, 1 if name == "changed" else 0)
            work.reset("monitor", name)
            wall, cpu, _, code = measure(work.command("monitor", args.python), work.root, work.root / "out")
            if code != 0:
                stderr = (work.root / "out.err").read_text(encoding="utf-8", errors="replace")
                raise SystemExit(f"the {name} round failed (exit {code}):\n{stderr[-2000:]}")
            if name == "cold":
                work.keep_baseline("monitor")
            work.reset("monitor", name)
            profile = profile_round(work, name, args.python, spy, Path(folder))
            report += section(f"{title}, N={args.n:,}", profile, (wall, cpu), args.n, args.top)
    args.out.write_text("\n".join(report), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
