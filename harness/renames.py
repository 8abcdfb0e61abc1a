"""Configuration keys that were renamed: an override that uses an old key is refused with a message
that names the new one, before Hydra composes anything (Hydra alone would only say the key is unknown).

:data:`RENAMED` maps an old key (or key prefix ending in ``.``) to its replacement. Checked by every
console script on its command-line overrides (:func:`harness.entry.console`: one line, exit 2).
"""

from __future__ import annotations

import re

from harness.errors import ConfigError

RENAMED: dict[str, str] = {
    "ppo.gamma": "ppo.ptx_coef (harness-ppo; the paper's gamma) or rl_runs.<i>.ptx_coef (harness-pipeline)",
    "ptx_gamma": "rl_runs.<i>.ptx_coef, e.g. rl_runs.1.ptx_coef=27.8 (the RL runs are a list of {name, ptx_coef})",
    "judges": "eval.judges.reward_models, e.g. eval.judges.reward_models.helpful=<reward model checkpoint>",
    **{f"eval.{e}": f"evals.{e} (each eval's spec is evals.<name>; its judges are in eval.judges)"
       for e in ("winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax")},
    **{f"evals@eval.{e}": f"evals@evals.{e} (a chat judge: judges@eval.judges=chat)"
       for e in ("winrate", "likert", "truthfulqa", "toxicity", "hallucination", "alignment_tax")},
}
"""Old key -> the key (and a short hint) that replaces it."""

_KEY = re.compile(r"^[+~]*(?P<key>[A-Za-z_][\w.@/]*)(?==|$)")
_STRING_RL_RUNS = re.compile(r"^[+~]*rl_runs=\[\s*[A-Za-z_]")


class RenamedKeyError(ConfigError):
    """An override used a key that was renamed; the message names the replacement."""


def override_key(override: str) -> str | None:
    """The config key an override sets (``ppo.gamma=1`` -> ``ppo.gamma``, ``+judges.x=y`` -> ``judges.x``),
    or ``None`` for something that is no key override (e.g. ``--multirun``)."""
    m = _KEY.match(override)
    return m.group("key") if m else None


def refuse_renamed(overrides: list[str]) -> None:
    """Raise :class:`RenamedKeyError` for the first override that sets a renamed key (exact key, or a key
    below a renamed prefix), naming the new key; ``rl_runs=[ppo, ...]`` (names only, the old form) is
    refused the same way. Other overrides pass untouched."""
    for o in overrides:
        if _STRING_RL_RUNS.match(o):
            raise RenamedKeyError(f"override {o!r}: rl_runs is a list of {{name, ptx_coef}} now, "
                                  "e.g. 'rl_runs=[{name:ppo,ptx_coef:0.0}]'")
        key = override_key(o)
        if key is None:
            continue
        for old, new in RENAMED.items():
            if key == old or (old.endswith(".") and key.startswith(old)) or key.startswith(old + "."):
                raise RenamedKeyError(f"override {o!r}: key '{old}' was renamed; use {new}")
