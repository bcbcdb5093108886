"""Peak memory of a command's whole process tree (a split round runs a child process and
multiprocessing's resource tracker beside the monitor), sampled from /proc every 20 ms (Linux).

    python3 bench/treemem.py -- policy-monitor --config C --db D run --once --all

Prints the peak of the summed RSS (shared pages counted in every process) and of the summed PSS
(shared pages split between the processes that share them: the memory the tree really takes).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def tree(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [p for child in children for p in tree(int(child))]


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KB; (0, 0) for a process that has just ended."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main() -> int:
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_rss = peak_pss = processes = 0
    while process.poll() is None:
        pids = tree(process.pid)
        sizes = [memory_kb(pid) for pid in pids]
        rss, pss = sum(r for r, _ in sizes), sum(p for _, p in sizes)
        if rss > peak_rss:
            peak_rss, processes = rss, len(pids)
        peak_pss = max(peak_pss, pss)
        time.sleep(0.02)
    print(
        f"peak RSS {peak_rss / 1024:.0f} MB summed over {processes} processes; "
        f"peak PSS {peak_pss / 1024:.0f} MB; exit {process.returncode}"
    )
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
