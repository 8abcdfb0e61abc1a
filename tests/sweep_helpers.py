"""Hand-made Hydra multirun directories and a reader for the figures inside a report page (tests only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.io import write_json, write_jsonl


def write_multirun(root: Path, params: dict[str, str] | None = None, task: list[str] | None = None,
                   upstream: str | None = "/runs/up") -> Path:
    """``<root>/multirun.yaml`` with the grid in ``hydra.sweeper.params`` and the command line in ``hydra.overrides.task``."""
    root.mkdir(parents=True, exist_ok=True)
    doc = {"hydra": {"sweeper": {"params": params or {}}, "overrides": {"task": task or []}}, "upstream": upstream}
    (root / "multirun.yaml").write_text(yaml.safe_dump(doc))
    return root


def row(policy: str, eval_: str, metric: str, value: float, ci: tuple[float, float] | None = None, n: int = 8,
        run_id: str = "r", **slice_: Any) -> dict[str, Any]:
    lo, hi = ci or (None, None)
    return {"run_id": run_id, "policy": policy, "eval": eval_, "metric": metric, "value": value, "ci_low": lo, "ci_high": hi,
            "n": n, "slice": {k: v for k, v in slice_.items() if v is not None}, "config_hash": ""}


def job_rows(win: float, ci: tuple[float, float], deltas: dict[str, float], policy: str = "ppo") -> list[dict[str, Any]]:
    """A sweep job's results: win rates of base, sft and ``policy`` (+ decoys: another judge, another
    baseline) and per-task accuracy deltas vs base (+ a 5-shot decoy and a truthfulqa delta that is
    not an alignment-tax task)."""
    out = [row(p, "winrate", "win_rate", w, (w - 0.1, w + 0.1), baseline="text-davinci-003", judge="helpful")
           for p, w in (("base", 0.2), ("sft", 0.3))]
    out += [row(policy, "winrate", "win_rate", win, ci, baseline="text-davinci-003", judge="helpful"),
            row(policy, "winrate", "win_rate", 0.99, (0.9, 1.0), baseline="text-davinci-003", judge="harmless"),
            row(policy, "winrate", "win_rate", 0.98, (0.9, 1.0), baseline="sft", judge="helpful"),
            row(policy, "truthfulqa", "mc1_delta", -0.5, baseline="base")]
    for task, d in deltas.items():
        t0, t5 = {"task": task, "shots": 0}, {"task": task, "shots": 5}
        out += [row("base", "alignment_tax", "acc", 0.5, **t0), row("sft", "alignment_tax", "acc_delta", 0.01, baseline="base", **t0),
                row(policy, "alignment_tax", "acc", 0.5 + d, **t0),
                row(policy, "alignment_tax", "acc_delta", d, (d - 0.05, d + 0.05), baseline="base", **t0),
                row(policy, "alignment_tax", "acc_delta", 0.7, baseline="base", **t5)]
    return out


def write_job(root: Path, name: str, overrides: list[str], rows: list[dict] | None = None, error: dict | None = None,
              train_log: list[dict] | None = None, policy: str = "ppo") -> Path:
    job = root / name
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if rows is not None:
        write_jsonl(job / "results" / "results.jsonl", rows)
    if error is not None:
        write_json(job / "error.json", error)
    if train_log is not None:
        write_jsonl(job / "checkpoints" / policy / "train_log.jsonl", train_log)
    return job


def figure_data(html: str, div_id: str) -> list[dict[str, Any]]:
    """The trace list plotly embeds for ``div_id`` (``Plotly.newPlot("<div_id>", [traces], layout, ...)``)."""
    start = html.index(f'"{div_id}",')
    data, _ = json.JSONDecoder().raw_decode(html[html.index("[", start):])
    return data
