"""Topic-classifier benchmark: precision and recall of monitor.classify against the hand labels.

Run from the repository root:

    python3 bench/classify.py                  # dev split, titles only
    python3 bench/classify.py --split both     # dev and test
    python3 bench/classify.py --bodies         # classify title + body where a body exists
    python3 bench/classify.py --errors         # list false positives / negatives (tune on dev)
    python3 bench/classify.py --config other.toml

Labels: bench/labels/{dev,test}.jsonl (see bench/labels/README.md). Only the topics declared in
the config are scored. Targets, per topic:

    titles alone:  precision >= 0.95 and recall >= 0.90
    with --bodies: precision >= 0.95 and recall >= 0.97

Tune on the DEV split only; the TEST split is for measuring, never for tuning. A topic with fewer
than 10 labelled positives in a split gets a warning: its figures are not meaningful. The exit
code is always 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's `monitor`, even when it is not installed

from monitor.classify import classify, compile_topics  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.errors import ConfigError  # noqa: E402
from monitor.models import Change  # noqa: E402

LABELS = Path(__file__).resolve().parent / "labels"
MIN_POSITIVES = 10
PRECISION_TARGET = 0.95
RECALL_TARGET = {False: 0.90, True: 0.97}  # keyed by --bodies


def load_items(split: str) -> list[dict]:
    with open(LABELS / f"{split}.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def judged(value: float | None, target: float) -> str:
    """'0.93 FAIL', '1.00 pass' or 'n/a' when the figure is undefined (nothing to divide by)."""
    if value is None:
        return "n/a"
    return f"{value:.2f} {'pass' if value >= target else 'FAIL'}"


def row(topic: str, *cells: object) -> str:
    """One table line: topic, the five counts right-aligned, then precision, recall and any warning."""
    counts = "".join(f"{cell:>10}" for cell in cells[:5])
    return f"{topic:<15}{counts}  " + "".join(f"{cell!s:<17}" for cell in cells[5:]).rstrip()


def one_line(text: str) -> str:
    return " ".join(text.split())


def report(split: str, items: list[dict], compiled: dict, bodies: bool, errors: list[str]) -> None:
    names = list(compiled)
    recall_target = RECALL_TARGET[bodies]
    scores = {name: {"labelled": 0, "predicted": 0, "tp": 0, "fp": 0, "fn": 0} for name in names}
    labelled_items = predicted_items = exact = 0
    for item in items:
        body = item.get("body", "") if bodies else ""
        # The monitor's own rule: title as is, a body must name a topic at least twice.
        found = classify(Change("bench", "new", item["title"], body=body), compiled, names).matches
        labels = set(item["topics"]) & set(names)
        labelled_items += bool(labels)
        predicted_items += bool(found)
        exact += labels == set(found)
        for name in names:
            s, hit, want = scores[name], name in found, name in labels
            s["labelled"] += want
            s["predicted"] += hit
            s["tp"] += hit and want
            if hit != want:
                s["fp" if hit else "fn"] += 1
                kind, terms = ("FP", ", ".join(found[name])) if hit else ("FN", "(none)")
                errors.append(
                    f"{split:<5} {name:<15} {kind}  {item['id']}\n      title:   {one_line(item['title'])}\n"
                    f"      matched: {terms}   labels: {sorted(labels)}   predicted: {sorted(found)}"
                )
    undated = sum(item.get("date") is None for item in items)
    with_body = sum(bool(item.get("body")) for item in items)
    used = "used" if bodies else "not used"
    print(f"\n== {split}: {len(items)} items ({undated} undated, {with_body} with a body, {used}) ==")
    print(f"   items labelled with a topic: {labelled_items}; predicted with a topic: {predicted_items};")
    print(f"   items whose predicted topics equal their labels: {exact}/{len(items)}")
    head = ("topic", "labelled", "predicted", "TP", "FP", "FN", f"precision>={PRECISION_TARGET:.2f}")
    print(row(*head, f"recall>={recall_target:.2f}"))
    thin = []
    for name, s in scores.items():
        precision = judged(ratio(s["tp"], s["predicted"]), PRECISION_TARGET)
        recall = judged(ratio(s["tp"], s["labelled"]), recall_target)
        counts = (s["labelled"], s["predicted"], s["tp"], s["fp"], s["fn"])
        warn = f"! <{MIN_POSITIVES} positives" if s["labelled"] < MIN_POSITIVES else ""
        thin += [f"{name} ({s['labelled']})"] if warn else []
        print(row(name, *counts, precision, recall, warn))
    if thin:
        print(f"! fewer than {MIN_POSITIVES} labelled positives, figures not meaningful: {', '.join(thin)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "sources.toml"), help="default: sources.toml")
    parser.add_argument("--split", choices=("dev", "test", "both"), default="dev")
    parser.add_argument("--bodies", action="store_true", help="classify title + body where one exists")
    parser.add_argument("--errors", action="store_true", help="list false positives and negatives")
    args = parser.parse_args(argv)
    try:
        topics = load_config(args.config).topics
    except ConfigError as exc:
        print(f"cannot load the config: {exc}", file=sys.stderr)
        return 0
    compiled = compile_topics(topics)
    splits = ["dev", "test"] if args.split == "both" else [args.split]
    print(f"config: {args.config}; topics: {', '.join(compiled)}")
    print("REMINDER: tune on the dev split only; the test split is for measuring, never for tuning.")
    errors: list[str] = []
    for split in splits:
        items = load_items(split)
        unknown = sorted({t for item in items for t in item["topics"]} - set(compiled))
        if unknown:
            print(f"\n{split}: labelled topics not in the config, not scored: {', '.join(unknown)}")
        report(split, items, compiled, args.bodies, errors)
    if args.errors:
        print(f"\n== errors ({len(errors)}): split, topic, FP/FN, id / title / matched terms ==")
        print("\n".join(errors) if errors else "(none)")
        if "test" in splits:
            print("REMINDER: do not tune on the test errors above; fix against dev, then re-measure.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
