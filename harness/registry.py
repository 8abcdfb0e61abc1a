"""The one registry of evals: name -> :class:`harness.evals.base.EvalDef`.

Built-in evals live in :data:`BUILTIN` modules, each calling :func:`register` at import. Evals of
other packages join the same way, from modules named in the ``HARNESS_EVAL_MODULES`` environment
variable (comma-separated) or in the ``instructgpt_harness.evals`` entry-point group; their YAML
sits in any folder on Hydra's search path (``hydra.searchpath=[file://<folder>]``). docs/adding_an_eval.md
walks through it.

:func:`register` also stores the eval's spec in Hydra's ConfigStore as ``evals/<name>_schema``, which
``conf/evals/<name>.yaml`` extends (``defaults: [<name>_schema, _self_]``), so a wrong key or type in an
eval's config fails when the config is composed.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from harness.declarations import EvalDef
from harness.errors import ConfigError

BUILTIN = (
    "harness.evals.winrate", "harness.evals.likert", "harness.evals.truthfulqa", "harness.evals.toxicity",
    "harness.evals.hallucination", "harness.evals.alignment_tax", "harness.evals.reward_model",
    "harness.judging.validation",
)
"""Modules that register the built-in evals and metric groups."""

PLUGIN_ENV = "HARNESS_EVAL_MODULES"
ENTRY_POINT_GROUP = "instructgpt_harness.evals"

_EVALS: dict[str, EvalDef] = {}
_loaded = False


def register(defn: EvalDef) -> EvalDef:
    """Add ``defn`` (and its spec as ConfigStore ``evals/<name>_schema``). Registering the same name
    again replaces it only with an equal definition (a module imported twice); another definition under
    a taken name raises ``ValueError``."""
    old = _EVALS.get(defn.name)
    if old is not None and (old.metrics != defn.metrics or old.spec is not defn.spec and
                            getattr(old.spec, "__qualname__", None) != getattr(defn.spec, "__qualname__", None)):
        raise ValueError(f"eval {defn.name!r} is registered twice with different definitions")
    _EVALS[defn.name] = defn
    if defn.spec is not None:
        from hydra.core.config_store import ConfigStore

        ConfigStore.instance().store(group="evals", name=f"{defn.name}_schema", node=defn.spec)
    return defn


def load_all() -> None:
    """Import the built-in eval modules and the plugins (``$HARNESS_EVAL_MODULES``, entry points), once.
    Raises ``ImportError`` naming a plugin module that does not import."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(module)
    plugins = [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"${PLUGIN_ENV}: eval module {module!r} does not import: {e}") from e
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


def get(name: str) -> EvalDef:
    """The eval (or metric group) ``name``; raises ``ValueError`` listing the registered names."""
    load_all()
    if name not in _EVALS:
        raise ValueError(f"no eval named {name!r}; registered: {sorted(_EVALS)} "
                         f"(an eval of another package: name its module in ${PLUGIN_ENV})")
    return _EVALS[name]


def check_eval_names(names, evals_cfg) -> None:
    """Raise :class:`~harness.errors.ConfigError` (one line, every problem) for an ``eval.run`` entry that no
    module registered, that is a metric group (no ``run``), or that has no ``evals.<name>`` config; meant to
    run before any work starts (:mod:`harness.validation`)."""
    problems = []
    for name in names:
        if name not in known():
            problems.append(f"eval.run: no eval named {name!r}; registered: {sorted(n for n, d in _EVALS.items() if d.run)} "
                            f"(an eval of another package: name its module in ${PLUGIN_ENV})")
        elif _EVALS[name].run is None:
            problems.append(f"eval.run: {name!r} is a metric group, not an eval that eval.run can run")
        elif name not in (evals_cfg or {}):
            problems.append(f"eval {name!r} is in eval.run but has no config evals.{name} "
                            f"(add evals@evals.{name}={name} to the defaults or the command line)")
    if problems:
        raise ConfigError("; ".join(problems))


def known() -> dict[str, EvalDef]:
    """Every registered eval and metric group, by name."""
    load_all()
    return dict(_EVALS)
