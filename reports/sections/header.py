"""The run report's header: what was run (model, preset, whether the weights were random), then run id,
creation time, git commit, policies, data fingerprints and the config, all from ``run.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reports.html import Safe, join, table, tag
from reports.sections.common import RunData, na

RANDOM_MODELS = ("tiny",)
"""Model profiles whose base weights are a random initialisation (``conf/model/tiny.yaml``; ``pipeline=smoke`` uses it)."""
RANDOM_BADGE = "random weights: numbers are not meaningful"
NOT_RECORDED = "not recorded in run.json"


@dataclass(frozen=True)
class RunIdentity:
    """What a run was: ``model`` (``config.model.name``: a profile, hub id or path), ``preset`` (``run.json``'s
    ``preset``, else ``config.pipeline.name``: ``default``, ``smoke``, ...; ``harness-eval`` records its config
    name, ``eval``) and ``random_weights`` (the model is a random-init profile of :data:`RANDOM_MODELS`, so every
    number of the run measures untrained or barely trained weights). ``None``: not recorded."""

    model: str | None
    preset: str | None
    random_weights: bool


def run_identity(run: dict[str, Any] | None) -> RunIdentity:
    """The :class:`RunIdentity` of a ``run.json`` object (``None``: nothing recorded)."""
    config = (run or {}).get("config") or {}
    model = config["model"].get("name") if isinstance(config.get("model"), dict) else None
    pipeline = config["pipeline"] if isinstance(config.get("pipeline"), dict) else {}
    preset = (run or {}).get("preset") or pipeline.get("name")
    return RunIdentity(None if model is None else str(model), None if preset is None else str(preset), model in RANDOM_MODELS)


def identity_banner(data: RunData) -> Safe:
    """One line under the page title: the model, the preset and, for random weights, the warning badge
    (``<strong class="badge-warn">``)."""
    ident = run_identity(data.run)
    parts = ["model ", tag("code", ident.model or NOT_RECORDED), " · preset ", tag("code", ident.preset or NOT_RECORDED)]
    if ident.random_weights:
        parts += [" ", tag("strong", RANDOM_BADGE, cls="badge-warn")]
    return tag("p", join(parts), cls="run-identity")


def _weights(ident: RunIdentity) -> Any:
    if ident.model is None:
        return NOT_RECORDED
    if ident.random_weights:
        return tag("strong", f"{RANDOM_BADGE} (model={ident.model} is a random initialisation)", cls="badge-warn")
    return f"loaded from {ident.model}"


def header_section(data: RunData) -> Safe:
    """The model, preset and base weights (:func:`run_identity`), ``run.json``'s identity fields and policies,
    data fingerprints (sha256) and the full config (collapsed)."""
    run = data.run
    if run is None:
        return na(f"run.json ({data.run_dir})")
    ident = run_identity(run)
    policies = run.get("policies") if isinstance(run.get("policies"), dict) else {}
    info = [("model", tag("code", ident.model or NOT_RECORDED)), ("preset", tag("code", ident.preset or NOT_RECORDED)),
            ("base weights", _weights(ident))]
    info += [(k, tag("code", v if v is not None else "—")) for k, v in
             [("run id", run.get("run_id")), ("created", run.get("created")), ("git commit", run.get("git_commit")),
              ("run directory", str(data.run_dir))]]
    if policies:
        info.append(("policies", join([tag("code", f"{name}: {json.dumps(src) if not isinstance(src, str) else src}")
                                       for name, src in policies.items()], sep=" ")))
    parts = [table(["field", "value"], info)]
    fps = run.get("data_fingerprints") or {}
    parts.append(tag("h3", "Data fingerprints (sha256)"))
    parts.append(table(["data", "sha256"], [(k, tag("code", v)) for k, v in fps.items()])
                 if fps else tag("p", "no data fingerprints recorded", cls="note"))
    if run.get("config"):
        cfg = json.dumps(run["config"], indent=2, sort_keys=True, default=str)
        parts.append(tag("details", join([tag("summary", "config"), tag("pre", cfg)])))
    return join(parts)
