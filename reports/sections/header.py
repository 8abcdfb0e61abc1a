"""The run report's header section: run id, creation time, git commit, data fingerprints, config."""

from __future__ import annotations

import json

from reports.html import Safe, join, table, tag
from reports.sections.common import RunData, na


def header_section(data: RunData) -> Safe:
    """``run.json``'s identity fields, data fingerprints (sha256) and the full config (collapsed)."""
    run = data.run
    if run is None:
        return na(f"run.json ({data.run_dir})")
    info = [("run id", run.get("run_id")), ("created", run.get("created")),
            ("git commit", run.get("git_commit")), ("run directory", str(data.run_dir))]
    parts = [table(["field", "value"], [(k, tag("code", v if v is not None else "—")) for k, v in info])]
    fps = run.get("data_fingerprints") or {}
    parts.append(tag("h3", "Data fingerprints (sha256)"))
    parts.append(table(["data", "sha256"], [(k, tag("code", v)) for k, v in fps.items()])
                 if fps else tag("p", "no data fingerprints recorded", cls="note"))
    if run.get("config"):
        cfg = json.dumps(run["config"], indent=2, sort_keys=True, default=str)
        parts.append(tag("details", join([tag("summary", "config"), tag("pre", cfg)])))
    return join(parts)
