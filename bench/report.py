"""bench/RESULTS.md from the runs of bench/perf.py: medians, ratios and the targets of issue #8.

Everything above the NOTES marker is rewritten on each run; the notes below it (profile findings,
what the figures mean) are kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

NOTES = "<!-- notes: kept across runs -->"
KB = 1024


def medians(runs: Sequence, n: int, scenario: str, tool: str) -> dict | None:
    chosen = [r for r in runs if (r.n, r.scenario, r.tool) == (n, scenario, tool)]
    if not chosen:
        return None
    return {
        "runs": len(chosen),
        "wall": statistics.median(r.wall for r in chosen),
        "cpu": statistics.median(r.cpu for r in chosen),
        "rss": statistics.median(r.rss_mb for r in chosen),
        "rss_max": max(r.rss_mb for r in chosen),
        "db": statistics.median(r.db_bytes for r in chosen),
        "alerts": sorted({r.alerts for r in chosen}),
        "expected": chosen[0].expected,
        "exact": all(r.exact and r.code in (0,) for r in chosen),
        "codes": sorted({r.code for r in chosen}),
    }


def _verdict(value: float | None, limit: float, fmt: str = "{:.2f}", lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    shown = fmt.format(value)
    if (lower_is_better and value <= limit) or (not lower_is_better and value >= limit):
        return f"{shown}: **met**"
    miss = abs(value / limit - 1) * 100
    digits = 3
    while shown == fmt.format(limit) or shown == f"{limit:.{digits - 1}g}":  # a miss rounding would hide
        shown, digits = f"{value:.{digits}g}", digits + 1
    return f"{shown}: **missed** by {miss:.2g}%" if miss < 1 else f"{shown}: **missed** by {miss:.0f}%"


def write_results(path: Path, meta: dict, runs: Sequence) -> None:
    sizes = sorted({r.n for r in runs})
    scenarios = [s for s in ("cold", "no-change", "changed") if any(r.scenario == s for r in runs)]
    tools = [t for t in ("monitor", "floor", "urlwatch") if any(r.tool == t for r in runs)]
    m = {(n, s, t): medians(runs, n, s, t) for n in sizes for s in scenarios for t in tools}
    lines = [
        "# Performance: policy-monitor, urlwatch and the bare-fetch floor on one corpus",
        "",
        f"- Date: {meta['date']}; machine: {meta['machine']}.",
        f"- Load average (1/5/15 min) while measuring: {'; '.join(meta['load'])}. Other engineers' test "
        "suites share this machine: the tools run in a rotating order within each repetition, so a busy "
        "moment does not fall on one tool.",
        f"- Corpus: seed {meta['seed']}, ~100 KB listing pages (50 items, some in Traditional Chinese, a "
        "fresh timestamp and CSRF token in every response), served from 127.0.0.1 .. 127.0.0.20 with "
        f"{meta['latency'] * 1000:.0f} ms latency per request; validators (ETag/Last-Modified) "
        f"{'on' if meta['validators'] else 'off, like the SFC and HKMA'}.",
        "- Runs per scenario and tool (medians shown): "
        + ", ".join(f"N={n}: {k}" for n, k in meta["runs"].items())
        + ". Whole-process figures: wall clock, user + sys CPU and peak RSS from the child's rusage.",
        "- monitor: `policy-monitor run --once --all` (per_host = 2 over 20 hosts); floor: bare async "
        "httpx GETs with the same per-host limit; urlwatch 2.29: css filter on the listing + html2text, "
        "its own cache database (it runs 10 threads in all, a new connection per page).",
        "- Reproduce: `pip install -e '.[bench]' && python3 bench/perf.py` (see bench/perf.py --help).",
        "",
        "| N | scenario | tool | wall s | CPU s | peak RSS MB | DB added | alerts / expected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        for s in scenarios:
            for t in tools:
                row = m[(n, s, t)]
                if not row:
                    continue
                alerts = "-" if t == "floor" else "/".join(map(str, row["alerts"])) + f" / {row['expected']}"
                if t != "floor" and not row["exact"]:
                    alerts += " (not exact)"
                db = "-" if t == "floor" else f"{row['db'] / KB:,.0f} KB"
                lines.append(
                    f"| {n} | {s} | {t} | {row['wall']:.2f} | {row['cpu']:.2f} | {row['rss']:.0f} | {db} "
                    f"| {alerts} |"
                )
    lines += ["", "## Ratios and the targets of issue #8", ""]
    lines += _targets(m, sizes, scenarios, meta)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    notes = old[old.index(NOTES) :] if NOTES in old else NOTES + "\n"
    path.write_text("\n".join(lines) + "\n\n" + notes, encoding="utf-8")


def _ratio(a: dict | None, b: dict | None, key: str) -> float | None:
    return a[key] / b[key] if a and b and b[key] else None


def _targets(m: dict, sizes: list[int], scenarios: list[str], meta: dict) -> list[str]:
    lines = []
    at = 1000 if 1000 in sizes else sizes[-1]
    latency = f"{meta['latency'] * 1000:.0f} ms"
    for s in scenarios:
        floor = _ratio(m.get((at, s, "monitor")), m.get((at, s, "floor")), "wall")
        urlwatch = _ratio(m.get((at, s, "monitor")), m.get((at, s, "urlwatch")), "wall")
        lines.append(
            f"- Wall, {s} round, N={at}, {latency}: monitor / floor = {_verdict(floor, 1.3)} (target <= 1.3); "
            f"monitor / urlwatch = {_verdict(urlwatch, 0.5)} (target <= 0.5)."
        )
    for n in sizes:
        cpu = _ratio(m.get((n, "no-change", "monitor")), m.get((n, "cold", "monitor")), "cpu")
        lines.append(f"- CPU, no-change / cold, N={n}: {_verdict(cpu, 0.30)} (target <= 0.30).")
    big, small = max(sizes), min(sizes)
    peak = {n: max((m[(n, s, "monitor")] or {}).get("rss_max", 0) for s in scenarios) for n in sizes}
    lines.append(f"- Peak RSS at N={big} (highest run of any scenario): {_verdict(peak[big], 120, '{:.0f} MB')}"
                 " (target <= 120 MB).")  # fmt: skip
    if big != small:
        lines.append(
            f"- Peak RSS, N={big} / N={small}: {_verdict(peak[big] / peak[small], 1.2)} (target <= 1.2)."
        )
    for n in sizes:
        row = m.get((n, "no-change", "monitor"))
        if row:
            per = row["db"] / n
            lines.append(f"- DB growth, no-change round, N={n}: {_verdict(per, KB, '{:.0f} bytes')} per "
                         "source (target <= 1 KB).")  # fmt: skip
    for n in sizes:
        row, cold = m.get((n, "changed", "monitor")), m.get((n, "cold", "monitor"))
        if row and cold:
            changed = max(1, round(n * 0.1))
            lines.append(
                f"- DB growth, 10%-changed round, N={n}: {row['db'] / changed / KB:.1f} KB per changed source "
                f"(the compressed raw body and snapshot; a cold round stores {cold['db'] / n / KB:.1f} KB per "
                "source)."
            )
    exact = all(
        row["exact"] for (n, s, t), row in m.items() if row and t == "monitor"
    )  # every scenario, every N
    lines.append(
        f"- Alerts: monitor {'exactly the expected ones (same sources and titles) in every run' if exact else '**not exact** in some run (see table)'}; "
        "urlwatch's counts are in the table (it has no topics: it reports every page on its first run and "
        "every changed page after)."
    )
    lines.append(f"- Start-up, `policy-monitor validate` on the shipped sources.toml: "
                 f"{_verdict(meta['startup_validate_s'], 0.5, '{:.2f} s')} (target < 0.5 s).")  # fmt: skip
    return lines
