"""Reuse a finished pipeline run's base, SFT, RM and judge checkpoints, read-only, in another run.

The paper's PPO sweeps (Ouyang et al. 2022, appendix E: KL penalty beta x ptx coefficient gamma)
train every policy from ONE SFT model against ONE reward model. ``harness-pipeline upstream=<run dir>``
does the same: the stages before PPO are not run again, their checkpoints are read from the upstream
run directory (nothing is written there) and only the RL runs of ``rl_runs`` train in the new run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.io import read_json

REUSED = ("base", "sft", "rm", "judge_helpful", "judge_harmless")
"""Checkpoint folders a run with ``upstream`` reads from ``<upstream>/checkpoints``."""
OPTIONAL = ("judge_harmless",)
"""Of :data:`REUSED`, those an upstream may lack (its ``train_judges`` left them out); reused when present."""
MODEL_FIELDS = ("name", "tokenizer", "chat_template")
"""Model settings that must match the upstream's (same tokenizer and prompt rendering)."""


def _is_checkpoint(path: Path, trained: bool) -> bool:
    return (path / "config.json").is_file() and (not trained or (path / "run.json").is_file())


def upstream_checkpoints(upstream: str | Path, model_cfg: Any) -> dict[str, str]:
    """Paths of :data:`REUSED` in the run directory ``upstream`` (an :data:`OPTIONAL` one only if it is there), validated.

    ``sft``, ``rm`` and the judges must be complete checkpoint folders (``config.json`` and the
    stage's ``run.json``). ``base`` is ``checkpoints/base`` when the upstream built it there
    (``model=tiny``), else the base the upstream's ``run.json`` names (a cached or hub model).
    When the upstream has a ``run.json``, its model ``name``, ``tokenizer`` and ``chat_template``
    must equal ``model_cfg``'s. Returns ``{name: path or hub id}``.

    Raises ``ValueError`` naming the upstream directory and every missing folder, or the model
    setting that differs.
    """
    root = Path(upstream).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"upstream={upstream}: no such directory (give a finished harness-pipeline run directory)")
    info = read_json(root / "run.json") if (root / "run.json").is_file() else None
    ck = root / "checkpoints"
    found: dict[str, str] = {}
    missing: list[str] = []
    for name in REUSED:
        if _is_checkpoint(ck / name, trained=name != "base"):
            found[name] = str(ck / name)
        elif name == "base" and info and isinstance(info.get("policies"), dict) and info["policies"].get("base"):
            found[name] = str(info["policies"]["base"])
        elif name in OPTIONAL and not (ck / name).exists():
            continue
        else:
            missing.append(str(ck / name))
    if missing:
        raise ConfigError(f"upstream={root}: missing checkpoint folder(s) {', '.join(missing)} (a complete one has config.json "
                          f"and, if trained, run.json); a finished harness-pipeline run has checkpoints/{{{','.join(REUSED)}}}")
    up_model = ((info or {}).get("config") or {}).get("model")
    if isinstance(up_model, dict):
        for key in MODEL_FIELDS:
            ours = model_cfg[key] if key in model_cfg else None
            if key in up_model and up_model[key] != ours:
                raise ConfigError(f"upstream={root}: its checkpoints were trained with model.{key}={up_model[key]!r}, "
                                  f"this run has model.{key}={ours!r}")
    return found
