"""Performance over time (`make bench-trend`): every saved bench run (bench/results/bench-*.json), one line per
run and scale, oldest first, each figure with its change from the previous run of that scale. A slower commit
shows as a jump; a different machine shows in the machine column, so the change is not read as a regression.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS_DIR = Path(__file__).with_name("results")

# (heading, how to read it from one scale's result); lower is better for every one but `ratio`.
FIGURES: tuple[tuple[str, Callable[[dict], float]], ...] = (
    ("ingest s", lambda r: r["ingest"]["harbor"]["seconds"]),
    ("ratio", lambda r: r["ingest"]["ratio"]),
    ("x SQL", lambda r: r["transform"]["ratio_run"]),
    ("build s", lambda r: r["transform"]["dbt_build"]["seconds"]),
    ("inc %", lambda r: 100 * r["incremental"]["fraction_of_full"]),
    ("RSS MiB", lambda r: r["ingest"]["harbor"]["peak_rss_mib"]),
)


def load_runs(directory: Path) -> tuple[list[dict], list[str]]:
    """The saved runs, oldest first, and a note for each file that is not a readable bench result."""
    runs, skipped = [], []
    for path in sorted(directory.glob("bench-*.json")):
        try:
            run = json.loads(path.read_text())
            if not isinstance(run, dict) or not {"results", "run_at"} <= run.keys():
                raise ValueError("no results or run_at")
        except (OSError, ValueError) as error:
            skipped.append(f"{path.name}: not a bench result ({error.__class__.__name__}: {error})")
            continue
        run["file"] = path.name
        runs.append(run)
    runs.sort(key=lambda run: run["run_at"])
    return runs, skipped


def trend(runs: list[dict]) -> str:
    """One block per scale; in each, a line per run with every figure and its change from the line above."""
    # n: runs per compared step (medians of n since 2026-12-03; one run each before, when a single pair moved
    # 10-20% at 1M), so a change of method is not read as a change of speed.
    heads = ["run at", "commit", "machine", "n", *(name for name, _ in FIGURES)]
    widths = [27, 9, 12, 2, *(15 for _ in FIGURES)]
    blocks = []
    for scale in sorted({result["order_items"] for run in runs for result in run["results"]}):
        lines = [f"{scale:,} order items", " ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True))]
        # Profiled runs are slower: each kind is compared with its own previous run only.
        previous: dict[bool, list[float]] = {}
        for run in runs:
            result = next((r for r in run["results"] if r["order_items"] == scale), None)
            if result is None:
                continue
            figures = [_figure(read, result) for _, read in FIGURES]
            profiled = bool(run.get("profiled"))
            machine = run.get("machine", {})
            cells = [
                ("* " if profiled else "") + run["run_at"],
                run.get("commit") or "-",
                f"{machine.get('cpus', '?')} cpu {machine.get('memory_gib', '?')}G",
                str(run.get("repeat", 1)),
                *(
                    _with_change(value, before)
                    for value, before in zip(figures, previous.get(profiled, figures), strict=True)
                ),
            ]
            lines.append(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
            # A figure a run lacks is compared with the last run that had it.
            previous[profiled] = [
                now if now is not None else before
                for now, before in zip(figures, previous.get(profiled, figures), strict=True)
            ]
        blocks.append("\n".join(lines))
    if any(run.get("profiled") for run in runs):
        blocks.append("* profiled with py-spy (`make bench PROFILE=1`): slower; compared with profiled runs only")
    return "\n\n".join(blocks)


def _figure(read: Callable[[dict], float], result: dict) -> float | None:
    """A figure of one result, or None where the result lacks it (a run that stopped partway, an older format)."""
    try:
        return float(read(result))
    except (KeyError, TypeError, ValueError):
        return None


def _with_change(value: float | None, before: float | None) -> str:
    if value is None:
        return "-"
    if before is None or before == value or not before:
        return f"{value:.2f}"
    return f"{value:.2f} ({(value - before) / before:+.0%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.trend", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where `make bench` saved its runs")
    args = parser.parse_args(argv)
    runs, skipped = load_runs(args.results_dir)
    for note in skipped:
        print(f"skipped {note}", file=sys.stderr)
    if not runs:
        print(f"no bench results in {args.results_dir}: run `make bench` first", file=sys.stderr)
        return 1
    print(trend(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
