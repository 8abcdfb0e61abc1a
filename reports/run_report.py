"""One self-contained HTML report (``report.html``) for one run directory: one section per paper figure.

Reads (all optional; a missing file or eval leaves its section with a "not available in this run"
note): ``run.json``, ``results/results.jsonl`` (ResultRow lines, read by :func:`harness.results.read_results`,
which also opens older runs; the paper's values, ``results/paper_reference.jsonl``, are kept out of
our figures and shown beside our numbers in tables), ``results/metrics.json`` (the metric
declarations: labels, units, directions), ``results/*_items.jsonl``
(per-item records, the sample browser), ``results/evals.json`` (eval info, generation cache),
``checkpoints/{ppo,ppo_ptx}/train_log.jsonl`` and ``generations/<policy>/*.jsonl`` (prompt and
continuation text of toxicity / hallucination items). The paper's reference values come from
``harness/evals/data/paper_reference.yaml`` (:mod:`reports.paper_ref`).

Under the title, one line names the model, the preset and, for random weights (``model=tiny``, ``pipeline=smoke``),
carries the badge "random weights: numbers are not meaningful" (:mod:`reports.sections.header`).
Sections, in order (ids): run header (``sec-run``: model, preset, base weights, run id, commit, policies, data
fingerprints, config), win rate per baseline and judge
(``sec-winrate``, Fig. 1), Likert score and metadata flags (``sec-likert``, Fig. 4), TruthfulQA
(``sec-truthfulqa``, Fig. 6), toxicity by instruction (``sec-toxicity``, Fig. 7), hallucination
(``sec-hallucination``), alignment tax (``sec-alignment-tax``), one generic section per other eval of the
run (``sec-eval-<name>``, drawn from its declarations), reward-model accuracy (``sec-rm``),
PPO curves and over-optimisation (``sec-ppo``), judge validation and generation cache
(``sec-judge-validation``), sample browser (``sec-samples``). A malformed file raises
``ValueError`` naming the file and record. Writes ``<run_dir>/report.html`` atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.io import atomic_write_text, read_json, read_jsonl
from harness.results import read_results, results_frame
from harness.results_upgrade import upgrade_items
from reports.html import Section, render_page
from reports.paper_ref import paper_values
from reports.sections.alignment_tax import alignment_tax_section
from reports.sections.benchmarks import (
    hallucination_section,
    toxicity_section,
    truthfulqa_section,
)
from reports.sections.common import RunData, slug
from reports.sections.generic import extra_evals, generic_section
from reports.sections.header import header_section, identity_banner
from reports.sections.preference import likert_section, winrate_section
from reports.sections.samples import samples_section
from reports.sections.training import ppo_section, rl_runs, rm_section
from reports.sections.headline import headline_section
from reports.sections.validation import judge_validation_section

MAX_ITEMS_PER_EVAL = 200


def _records(path: Path) -> list[dict[str, Any]]:
    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: record {i}: expected a JSON object, got {type(r).__name__}")
    return rows


def load_train_log(path: str | Path) -> list[dict[str, Any]]:
    """Per-step training-log dicts; ``ValueError`` naming file and record for a missing / non-integer ``step``."""
    path = Path(path)
    rows = _records(path)
    for i, r in enumerate(rows, 1):
        if not isinstance(r.get("step"), int) or isinstance(r.get("step"), bool):
            raise ValueError(f"{path}: record {i}: missing or non-integer 'step'")
    return rows


def load_items(results_dir: str | Path) -> dict[str, tuple[Path, list[dict[str, Any]]]]:
    """Every ``<eval>_items.jsonl`` under ``results_dir`` as ``{eval: (path, records)}`` (sorted by name; older
    shapes upgraded). Each record must be a JSON object with a string-able ``policy``; else ``ValueError``
    naming file and record."""
    out = {}
    for path in sorted(Path(results_dir).glob("*_items.jsonl")):
        name = path.name[: -len("_items.jsonl")]
        records = upgrade_items(name, _records(path))
        for i, r in enumerate(records, 1):
            if r.get("policy") is None:
                raise ValueError(f"{path}: record {i}: missing field(s) policy")
        out[name] = (path, records)
    return out


def _json_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return obj


def load_run(run_dir: str | Path) -> RunData:
    """Everything the report reads from ``run_dir`` (see module docstring) as :class:`RunData`.
    Raises ``FileNotFoundError`` if ``run_dir`` does not exist, ``ValueError`` for a malformed file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    res_path = run_dir / "results" / "results.jsonl"
    results = read_results(res_path) if res_path.is_file() else None
    df = results_frame(results.rows) if results is not None else None
    paper = paper_values(results.paper if results is not None else None)
    run = _json_object(run_dir / "run.json")
    logs, probes = {}, {}
    for name in rl_runs(run):
        path = run_dir / "checkpoints" / name / "train_log.jsonl"
        if path.is_file():
            logs[name] = load_train_log(path)
        if (path := path.with_name("probe_log.jsonl")).is_file():
            probes[name] = load_train_log(path)
    return RunData(run_dir=run_dir, run=run, results=df, declarations=results.declarations if results else {}, paper=paper,
                   items=load_items(run_dir / "results"), logs=logs, probes=probes, evals=_json_object(run_dir / "results" / "evals.json"))


COVERED = {"winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax", "reward_model", "judge_validation"}
"""Evals with a section of their own; every other eval of the run gets the generic section (:mod:`reports.sections.generic`)."""


def run_sections(data: RunData, max_items_per_eval: int = MAX_ITEMS_PER_EVAL) -> list[Section]:
    """The report's sections in order (ids ``sec-*``, see module docstring); an eval without a section of its own
    gets a generic one (``sec-eval-<name>``) after the alignment tax."""
    extra = [Section(f"sec-eval-{slug(name)}", (data.declarations[name].title if name in data.declarations else "") or name,
                     generic_section(data, name)) for name in extra_evals(data, COVERED)]
    return [
        Section("sec-headline", "Headline: the paper's central contrasts", headline_section(data)),
        Section("sec-run", "Run", header_section(data)),
        Section("sec-winrate", "Win rate against each baseline (paper Fig. 1)", winrate_section(data)),
        Section("sec-likert", "Likert score and metadata flags (paper Fig. 4)", likert_section(data)),
        Section("sec-truthfulqa", "TruthfulQA (paper Fig. 6)", truthfulqa_section(data)),
        Section("sec-toxicity", "Toxicity by instruction type (paper Fig. 7)", toxicity_section(data)),
        Section("sec-hallucination", "Closed-domain hallucination", hallucination_section(data)),
        Section("sec-alignment-tax", "Alignment tax (public NLP tasks)", alignment_tax_section(data)),
        *extra,
        Section("sec-rm", "Reward model accuracy", rm_section(data)),
        Section("sec-ppo", "PPO training curves and over-optimisation", ppo_section(data)),
        Section("sec-judge-validation", "Judge validation and generation cache", judge_validation_section(data)),
        Section("sec-samples", "Sample browser", samples_section(data, cap=max_items_per_eval)),
    ]


def build_run_report(run_dir: str | Path, out_path: str | Path | None = None, *,
                     max_items_per_eval: int = MAX_ITEMS_PER_EVAL) -> Path:
    """Render ``<run_dir>/report.html`` (or ``out_path``) atomically and return its path.

    ``run_dir``: a run directory (see module docstring). Fractions (win rate, accuracy,
    agreement) are shown as %, paired deltas of fractions in percentage points.
    ``max_items_per_eval``: how many per-item records of each eval the sample browser shows
    (file order; a note says how many were left out). Raises ``FileNotFoundError`` if ``run_dir``
    does not exist and ``ValueError`` naming the file (and record) for any malformed input file;
    missing optional files only leave their section with a note.
    """
    data = load_run(run_dir)
    run_id = (data.run or {}).get("run_id") or data.run_dir.name
    page = render_page(f"InstructGPT harness report — {run_id}", run_sections(data, max_items_per_eval), intro=identity_banner(data))
    out = Path(out_path) if out_path is not None else data.run_dir / "report.html"
    return atomic_write_text(out, page)
