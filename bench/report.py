"""Markdown tables from ``bench/results/*.json``: the numbers in bench/README.md come from here.

``python -m bench.report [results_dir]`` prints one throughput table (every result file, every
precision) and, for each PPO result, the phase breakdown of ours and trl's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR
from harness.io import read_json

PHASE_ORDER = ["generate", "rollout_policy_forward", "rollout_ref_forward", "rollout_value_forward", "rollout_reward_forward",
               "forward", "train_forward", "backward", "clip_grad", "optimizer_step", "other"]


def _f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def throughput_rows(name: str, res: dict[str, Any]) -> list[str]:
    """One markdown row per precision of one result file."""
    rows = []
    env, peaks = res["environment"], res["peaks_gflops"]["measured_matmul_1024"]
    for precision, row in res["summary"].items():
        o, t = row["ours"], row["trl"]
        peak = peaks.get(precision)
        rows.append(" | ".join([
            f"| {res['bench'].upper()}", name, precision, f"{res['example_unit']}s",
            _f(o["examples_per_s"], 3), _f(t["examples_per_s"], 3), _f(o["tokens_per_s"], 0), _f(t["tokens_per_s"], 0),
            f"**{_f(row['ratio_ours_over_trl'])}**", _f(row.get("cpu_ratio_ours_over_trl")),
            _f(o["gflops_per_s"], 1), _f(t["gflops_per_s"], 1),
            f"{_f(peak, 0)} ({_f(100 * o['gflops_per_s'] / peak, 0)} % / {_f(100 * t['gflops_per_s'] / peak, 0)} %)" if peak else "–",
            f"{_f(100 * o['utilisation_vs_issue_peak'], 0)} % / {_f(100 * t['utilisation_vs_issue_peak'], 0)} %",
            str(row["repeats"]), str(env["torch_threads"]),
            f"{_f(env['loadavg_start'][0], 1)}–{_f(env.get('loadavg_end', [None])[0], 1)} |",
        ]))
    return rows


def throughput_table(results: dict[str, dict[str, Any]]) -> str:
    head = ("| stage | result file | precision | unit | ours /s | trl /s | ours tok/s | trl tok/s | ratio (wall) | ratio (CPU) "
            "| ours GFLOP/s | trl GFLOP/s | measured peak (ours / trl) | vs issue peak (ours / trl) | repeats | threads | load |")
    sep = "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"
    return "\n".join([head, sep] + [r for name, res in results.items() for r in throughput_rows(name, res)])


def phase_table(name: str, res: dict[str, Any]) -> str:
    """Seconds per step of each phase (wall; CPU in brackets), ours and trl's, per precision."""
    precisions = list(res["phases"])
    head = "| phase | " + " | ".join(f"{impl} {p}" for p in precisions for impl in ("ours", "trl")) + " |"
    sep = "|" + "|".join(["---"] * (1 + 2 * len(precisions))) + "|"
    lines = [f"{name} (seconds per {res['example_unit'].split()[0]} batch step; CPU seconds in brackets; share of the step)", "",
             head, sep]
    phases = [p for p in PHASE_ORDER if any(p in res["phases"][pr].get(i, {}) for pr in precisions for i in ("ours", "trl"))]
    for ph in phases:
        cells = []
        for p in precisions:
            for impl in ("ours", "trl"):
                v = res["phases"][p].get(impl, {}).get(ph)
                cells.append("–" if v is None else f"{v['seconds_per_step']:.2f} ({v['cpu_seconds_per_step']:.2f}) {100 * v['share']:.0f} %")
        lines.append(f"| {ph} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else RESULTS_DIR
    results = {p.stem: read_json(p) for p in sorted(root.glob("*.json"))}
    # only the *_vs_trl results: toxicity_scorers, eval_stage and judge_levers files have tables of their own
    results = {name: res for name, res in results.items() if isinstance(res, dict) and "peaks_gflops" in res}
    parts = [throughput_table(results)]
    parts += [phase_table(name, res) for name, res in results.items() if res.get("phases")]
    text = "\n\n".join(parts)
    print(text)
    return text


if __name__ == "__main__":
    main()
