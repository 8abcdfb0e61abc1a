"""Judge levers (issue 16, item 1 "Judges beat length"): train a helpful judge variant, measure it against humans and length.

Each run trains one reward-model judge the way the harness trains its default ``helpful`` judge
(:func:`harness.default_judges.default_judge` -> :func:`harness.stages.run_rm`): the recipe is
``conf/judge/default.yaml`` (:class:`harness.config.RMConfig`) with this run's overrides, the data is
``conf/pipeline/default.yaml``'s ``data`` block (:class:`harness.config.DataConfig`), the comparisons
are :func:`harness.selection.comparisons` ``(data, "judge_helpful")``, the model is
:func:`harness.models.load_scalar_model` of the base, and the trainer is
:class:`trainers.reward_model.RewardModelTrainer` itself. Only the checkpoint is not saved (the
judge is scored in memory by the trainer's own :meth:`~trainers.reward_model.RewardModelTrainer.score`).

Every variant is measured on the same held-out pairs:

- ``hh``: held-out hh-rlhf human pairs of the helpful subsets (:func:`harness.selection.judge_validation_pairs`
  with ``hh_subsets`` = the three helpful-* subsets; judge-side validation prompts, never trained on);
- ``gpt4``: the first ``--n-gpt4`` of AlpacaEval's 805 GPT-4-annotated text-davinci-003 vs -001 pairs.

Per set: the judge's agreement with the labels (95 % bootstrap interval, :func:`harness.judging.agreement.agreement`),
"longer output wins" on the same pairs (:func:`harness.judging.pairwise.longer_output_judge`), agreement on
the pairs whose preferred output is the shorter / the longer one (in characters), the mean of those two
(length-balanced agreement: a length-only judge scores 0.5), and the share of pairs where the judge prefers
the longer output. Training: loss of the first and last block of steps (a block = 1/8 of the run, at least
1 step), the same for the trainer's batch accuracy, and agreement on a sample of the training pairs.

Levers: ``--trainable-layers`` (0 = every block), ``--lr``, ``--head-lr``, ``--epochs``, ``--n-train``,
``--balance length`` (a training set with as many pairs where the human chose the shorter output as the
longer one, drawn from the whole judge-side training pool), ``--ensemble RUN [RUN ...]`` (no training:
the sum of the listed runs' standardised score margins, from their saved per-pair margins).

One JSON record per run is appended to ``bench/results/judge_levers.json`` (atomic rewrite under a lock);
per-pair margins go to ``bench/results/judge_levers_margins/<variant>.json`` (for ensembles).

Run: ``PYTHONPATH=. HARNESS_DATA_DIR=../shared/data python -m bench.judge_levers --variant default``
(``--help`` lists every option). ``--base``: the SmolLM2-135M-Instruct safetensors folder (default: the
harness's cache under ``HARNESS_CACHE_DIR``, materialised there if missing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from harness.config import DataConfig, RMConfig
from harness.io import file_lock, write_json
from harness.judging.agreement import (
    agreement,
    gpt4_annotations_path,
    load_gpt4_annotations,
)
from harness.judging.pairwise import longer_output_judge

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "judge_levers.json"
MARGINS = ROOT / "bench" / "results" / "judge_levers_margins"
HELPFUL = ["helpful-base", "helpful-online", "helpful-rejection-sampled"]
SPLIT = "judge_helpful"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--variant", help="name of this run (the record's key)")
    p.add_argument("--table", action="store_true", help="print the markdown table of every recorded run and exit")
    p.add_argument("--note", default="", help="free text kept in the record")
    p.add_argument("--lr", type=float, default=None, help="block learning rate (default: conf/judge/default.yaml)")
    p.add_argument("--head-lr", type=float, default=None)
    p.add_argument("--trainable-layers", type=int, default=None, help="top N blocks trainable; 0 = every block")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lora-r", type=int, default=0, help="LoRA rank on every block (q_proj, v_proj) + the full head; "
                   "replaces trainable_layers (0: off)")
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--warmup-ratio", type=float, default=None)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--max-prompt-length", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None, help="judge-side training pairs (default: conf/pipeline/default.yaml)")
    p.add_argument("--balance", choices=["none", "length", "matched"], default="none",
                   help="length: half the training pairs have the shorter output preferred, half the longer; matched: the "
                        "n_train pairs of the pool whose two outputs are closest in length (character ratio)")
    p.add_argument("--length-term", action="store_true", help="rm.length_term: a length coefficient fitted on the training "
                   "pairs before training enters the loss, the judge's score is without it (trainers.losses.length_coefficient)")
    p.add_argument("--ensemble", nargs="+", default=None, help="no training: combine these earlier variants' margins")
    p.add_argument("--n-hh", type=int, default=0, help="held-out hh pairs per helpful subset (0: all 317 of the three subsets)")
    p.add_argument("--n-gpt4", type=int, default=200, help="first N of the 805 GPT-4-annotated davinci pairs (0: all)")
    p.add_argument("--n-train-eval", type=int, default=64, help="training pairs scored after training (memorisation check)")
    p.add_argument("--eval-max-length", type=int, default=None, help="scoring length (default: the training max_length)")
    p.add_argument("--eval-max-prompt-length", type=int, default=None)
    p.add_argument("--base", default=None, help="base causal-LM folder (default: the harness's SmolLM2 cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR"))
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--margins-dir", default=str(MARGINS), help="per-pair margins of each run (read by --ensemble)")
    p.add_argument("--prefix-cache", default=None, help="folder of the frozen blocks' outputs on the eval pairs "
                   "(default: $HARNESS_CACHE_DIR/judge_levers_prefix)")
    p.add_argument("--no-train", action="store_true", help="score the untrained judge (zero head: all ties); fills the prefix cache")
    p.add_argument("--dry", action="store_true", help="print the settings and data sizes, train nothing")
    return p.parse_args(argv)


# ------------------------------------------------------------------ settings
def settings(args) -> tuple[Any, Any]:
    """(data_cfg, judge_cfg): the pipeline's data block and the judge recipe, with this run's overrides."""
    pipe = OmegaConf.load(ROOT / "conf" / "pipeline" / "default.yaml")
    data = OmegaConf.merge(OmegaConf.structured(DataConfig), pipe.data, {"data_dir": args.data_dir, "seed": args.seed})
    if args.n_train is not None:
        data.n_judge_train = args.n_train
    recipe = OmegaConf.load(ROOT / "conf" / "judge" / "default.yaml")
    judge = OmegaConf.merge(OmegaConf.structured(RMConfig), recipe)
    over = {"lr": args.lr, "head_lr": args.head_lr, "epochs": args.epochs, "batch_size": args.batch_size,
            "warmup_ratio": args.warmup_ratio, "max_length": args.max_length, "max_prompt_length": args.max_prompt_length}
    for k, v in over.items():
        if v is not None:
            judge[k] = v
    if args.trainable_layers is not None:
        judge.trainable_layers = args.trainable_layers or None
    if args.length_term:
        judge.length_term = True
    if args.lora_r:
        judge.trainable_layers = None
        judge.lora.r, judge.lora.alpha = args.lora_r, args.lora_alpha
    return data, judge


def base_path(args) -> str:
    if args.base:
        return args.base
    from harness.model_config import ModelConfig
    from harness.models import materialize_base

    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"name": "smollm2-135m"})
    return materialize_base(cfg, "", args.data_dir, args.seed)


def longer_preferred(a: str, b: str, pref_a: float) -> bool | None:
    """Whether the labelled-better output is the longer one (None: equal length or a labeller tie)."""
    if len(a) == len(b) or pref_a == 0.5:
        return None
    return (len(a) > len(b)) == (pref_a == 1.0)


def training_pairs(data_cfg, args) -> tuple[list, list, dict]:
    """(train, val, fingerprints) of the judge split; ``--balance length`` redraws train length-balanced
    from the whole judge-side training pool, ``--balance matched`` takes the pool's pairs closest in length."""
    from harness import selection

    if args.balance == "none":
        return selection.comparisons(data_cfg, SPLIT)
    n = data_cfg.n_judge_train
    pool_cfg = OmegaConf.merge(data_cfg, {"n_judge_train": 10**6})
    pool, val, fp = selection.comparisons(pool_cfg, SPLIT)  # every training pair of the split (a warning says so)
    def longer_won(c) -> bool | None:
        return longer_preferred(c.completions[0], c.completions[1], 1.0 if c.ranking[0] == 0 else 0.0)

    rng = random.Random(args.seed)
    if args.balance == "matched":
        def ratio(c):
            a, b = len(c.completions[0]), len(c.completions[1])
            return max(a, b) / max(1, min(a, b))
        ranked = sorted(pool, key=lambda c: (ratio(c), c.prompt))
        train = ranked[:n]
        rng.shuffle(train)
        n_short = sum(longer_won(c) is False for c in train)
        fp = dict(fp, balance=f"matched: the {len(train)} of {len(pool)} pool pairs closest in length (character ratio <= "
                              f"{max(map(ratio, train)):.3f}; {n_short} shorter-preferred)")
        return train, val, fp
    longer = [c for c in pool if longer_won(c) is True]
    shorter = [c for c in pool if longer_won(c) is False]
    half = min(n // 2, len(longer), len(shorter))
    train = rng.sample(longer, half) + rng.sample(shorter, half)
    rng.shuffle(train)
    fp = dict(fp, balance=f"length: {half} longer-preferred + {half} shorter-preferred of {len(longer)} / {len(shorter)} in the pool")
    return train, val, fp


# ------------------------------------------------------------------ eval sets
def eval_sets(data_cfg, args) -> dict[str, dict[str, list]]:
    """``{"hh": {prompts, a, b, pref_a}, "gpt4": {...}}``: the held-out pairs every variant is scored on."""
    from harness import selection

    hh_cfg = OmegaConf.merge(data_cfg, {"hh_subsets": HELPFUL})
    comps, _ = selection.judge_validation_pairs(hh_cfg, args.n_hh or None)
    hh = {"prompts": [c.prompt for c in comps], "a": [c.completions[0] for c in comps], "b": [c.completions[1] for c in comps],
          "pref_a": [0.5 if c.tied[0] else (1.0 if c.ranking[0] == 0 else 0.0) for c in comps],
          "ids": [c.id for c in comps], "subset": [c.source for c in comps]}
    gpt4 = load_gpt4_annotations(gpt4_annotations_path(args.data_dir))
    gpt4 = gpt4[: args.n_gpt4] if args.n_gpt4 else gpt4
    gpt4 = [p for p in gpt4 if p.preference is not None]
    g = {"prompts": [p.instruction for p in gpt4], "a": [p.output_1 for p in gpt4], "b": [p.output_2 for p in gpt4],
         "pref_a": [p.preference for p in gpt4], "ids": [p.id for p in gpt4], "subset": ["alpaca_eval_gpt4"] * len(gpt4)}
    return {"hh": hh, "gpt4": g}


def _est(scores: list[float], seed: int) -> dict[str, Any]:
    if not scores:
        return {"value": None, "ci": None, "n": 0}
    from harness.stats import bootstrap_mean

    e = bootstrap_mean(scores, seed=seed)
    ci = None if math.isnan(e.ci_low) else [round(e.ci_low, 4), round(e.ci_high, 4)]
    return {"value": round(e.value, 4), "ci": ci, "n": e.n}


def measure(margins: list[float], s: dict[str, list], seed: int) -> dict[str, Any]:
    """Agreement and length statistics of a judge whose preference for a over b is sign(margin)."""
    jp = [1.0 if m > 0 else 0.0 if m < 0 else 0.5 for m in margins]
    lw = longer_output_judge(s["prompts"], s["a"], s["b"])
    hp = s["pref_a"]
    e = agreement(jp, hp, seed=seed)
    lwe = agreement(lw, hp, seed=seed)
    out: dict[str, Any] = {
        "agreement": {"value": round(e.value, 4), "ci": [round(e.ci_low, 4), round(e.ci_high, 4)], "n": e.n},
        "longer_wins": {"value": round(lwe.value, 4), "ci": [round(lwe.ci_low, 4), round(lwe.ci_high, 4)], "n": lwe.n},
    }
    sub = {"shorter_preferred": [], "longer_preferred": []}
    sub_lw = {"shorter_preferred": [], "longer_preferred": []}
    prefers_longer = []
    diff_vs_lw = []
    for j, h, a, b, l in zip(jp, hp, s["a"], s["b"], lw):
        if len(a) != len(b) and j != 0.5:
            prefers_longer.append(float((j == 1.0) == (len(a) > len(b))))
        lp = longer_preferred(a, b, h) if h is not None else None
        if lp is None:
            continue
        key = "longer_preferred" if lp else "shorter_preferred"
        sub[key].append(1.0 - abs(j - h))
        sub_lw[key].append(1.0 - abs(l - h))
        diff_vs_lw.append((1.0 - abs(j - h)) - (1.0 - abs(l - h)))
    out["shorter_preferred"] = _est(sub["shorter_preferred"], seed)
    out["longer_preferred"] = _est(sub["longer_preferred"], seed)
    if sub["shorter_preferred"] and sub["longer_preferred"]:
        out["length_balanced"] = round((statistics.mean(sub["shorter_preferred"]) + statistics.mean(sub["longer_preferred"])) / 2, 4)
    out["judge_prefers_longer"] = round(statistics.mean(prefers_longer), 4) if prefers_longer else None
    out["minus_longer_wins"] = _est(diff_vs_lw, seed)  # paired difference judge - longer-wins, same pairs
    out["judge_ties"] = sum(j == 0.5 for j in jp)
    return out


class _Skip(torch.nn.Module):
    """Stands in for a frozen block whose output is read from the prefix cache."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def _blocks_of(trainer):
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(trainer.model)
    n = model.config.num_hidden_layers
    return next(m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n)


def _prefix_key(trainer, name: str, s: dict, base: str, k: int) -> str:
    import hashlib

    blob = {"base": str(Path(base).resolve()), "k": k, "set": name, "ids": s["ids"], "len": trainer.cfg.max_length,
            "plen": trainer.cfg.max_prompt_length, "pad": trainer.tokenizer.pad_token_id, "batch": 16, "v": 1}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


@torch.no_grad()
def margins_of(trainer, s: dict[str, list], batch: int = 16, prefix: tuple[Path, int] | None = None) -> list[float]:
    """r(x, a) - r(x, b) per pair, scored by the trainer's own reader (its recipe's lengths).

    ``prefix = (file, k)``: the lower ``k`` blocks are frozen (identical to the base in every run with the
    same ``k``), so their output on these pairs is computed once, saved to ``file`` and read back by later
    runs, which then run only the top blocks. Each cached run re-scores its first batch in full and
    checks that the two agree (a run that cannot use the cache scores everything in full).
    """
    trainer.model.eval()
    n = len(s["prompts"])
    order = sorted(range(n), key=lambda i: len(s["prompts"][i][-2000:]) + max(len(s["a"][i]), len(s["b"][i])))  # less padding
    batches_ = [order[start : start + batch] for start in range(0, n, batch)]

    def run(idx):
        ps = [s["prompts"][i] for i in idx]
        return trainer.score(ps + ps, [s["a"][i] for i in idx] + [s["b"][i] for i in idx]).float().cpu()

    blocks_, cache, hooks, saved = None, None, [], []
    if prefix is not None:
        file, k = prefix
        blocks_ = _blocks_of(trainer)
        if file.is_file():
            cache = torch.load(file)
            full0 = run(batches_[0])
            originals = list(blocks_[:k])
            for j in range(k):
                blocks_[j] = _Skip()
            feed = {"i": 0}

            def inject(module, args, kwargs):
                return (cache[feed["i"]],) + tuple(args[1:]), kwargs

            hooks.append(blocks_[k].register_forward_pre_hook(inject, with_kwargs=True))
        else:
            def keep(module, args, kwargs):
                saved.append(args[0].detach().clone())

            hooks.append(blocks_[k].register_forward_pre_hook(keep, with_kwargs=True))
    out = [0.0] * n
    try:
        for b, idx in enumerate(batches_):
            if cache is not None:
                feed["i"] = b
            r = run(idx).tolist()
            for j, i in enumerate(idx):
                out[i] = r[j] - r[len(idx) + j]
            if cache is not None and b == 0:
                diff = (torch.tensor(r) - full0).abs().max().item()
                if diff > 1e-3:
                    raise RuntimeError(f"prefix cache {prefix[0]}: cached scores differ from full ones by {diff}")
    finally:
        for h in hooks:
            h.remove()
        if cache is not None:
            for j, m in enumerate(originals):
                blocks_[j] = m
    if prefix is not None and cache is None and saved:
        prefix[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = prefix[0].with_name(prefix[0].name + f".tmp{os.getpid()}")
        torch.save(saved, tmp)
        tmp.rename(prefix[0])
    trainer.model.train()
    return out


def blocks(values: list[float]) -> dict[str, Any]:
    if not values:
        return {}
    size = max(1, len(values) // 8)
    return {"first_block_mean": round(statistics.mean(values[:size]), 4), "last_block_mean": round(statistics.mean(values[-size:]), 4),
            "block_size": size, "steps": len(values),
            "block_means": [round(statistics.mean(values[i : i + size]), 4) for i in range(0, len(values), size)]}


# ------------------------------------------------------------------ runs
def train_variant(args, data_cfg, judge_cfg, sets) -> dict[str, Any]:
    from harness.models import load_scalar_model, load_tokenizer
    from trainers.reward_model import RewardModelTrainer

    base = base_path(args)
    train, _val, fp = training_pairs(data_cfg, args)
    lp = [longer_preferred(c.completions[0], c.completions[1], 1.0 if c.ranking[0] == 0 else 0.0) for c in train]
    t0 = time.time()
    trainer = RewardModelTrainer(judge_cfg, load_scalar_model(base), load_tokenizer(base), train, [], "auto", args.seed)
    log_path = Path(os.environ.get("HARNESS_CACHE_DIR", "/tmp")) / "judge_levers_logs" / f"{args.variant}.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    if args.no_train:  # the zero-initialised head: every pair a tie; builds the prefix cache for later runs
        from trainers.reward_model import RMResult

        result, logrows = RMResult(), []
    else:
        result = trainer.train(log_path=log_path)
        logrows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    t_train = time.time() - t0
    if args.eval_max_length:
        trainer.cfg = OmegaConf.merge(trainer.cfg, {"max_length": args.eval_max_length,
                                                    "max_prompt_length": args.eval_max_prompt_length or trainer.cfg.max_prompt_length})
    t1 = time.time()
    k = max(trainer.model.config.num_hidden_layers - judge_cfg.trainable_layers, 0) if judge_cfg.trainable_layers else 0
    cache_dir = Path(args.prefix_cache or Path(os.environ.get("HARNESS_CACHE_DIR", "/tmp")) / "judge_levers_prefix")
    margins = {}
    for name, s in sets.items():
        if not k:
            margins[name] = margins_of(trainer, s)
            continue
        file = cache_dir / f"{name}-{_prefix_key(trainer, name, s, base, k)}.pt"
        file.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(file):  # a run that finds another building the cache waits for it
            margins[name] = margins_of(trainer, s, prefix=(file, k))
    sub = train[: args.n_train_eval]
    tr = {"prompts": [c.prompt for c in sub], "a": [c.completions[0] for c in sub], "b": [c.completions[1] for c in sub],
          "pref_a": [1.0 if c.ranking[0] == 0 else 0.0 for c in sub]}
    tr_m = margins_of(trainer, tr) if sub else []
    t_eval = time.time() - t1
    rec = {"train": {"n_train": len(train), "longer_preferred_share": round(sum(x is True for x in lp) / max(1, sum(x is not None for x in lp)), 4),
                     "n_trainable_params": trainer.n_trainable, "steps": 0 if args.no_train else trainer.total_steps, "loss": blocks(result.train_losses),
                     "batch_accuracy": blocks([r.get("accuracy", float("nan")) for r in logrows]),
                     "lr_first_last": [logrows[0].get("lr"), logrows[-1].get("lr")] if logrows else None,
                     "log_2": round(math.log(2), 4), "data_note": fp.get("balance"),
                     "length_coef": None if result.length_coef is None else round(result.length_coef, 4)},
           "train_pairs_agreement": _est([1.0 - abs((1.0 if m > 0 else 0.0 if m < 0 else 0.5) - h) for m, h in zip(tr_m, tr["pref_a"])], args.seed),
           "time_s": {"train": round(t_train, 1), "eval": round(t_eval, 1)}}
    return rec, margins


def ensemble_margins(names: list[str], sets, margins_dir: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for name in sets:
        total = None
        for v in names:
            saved = json.loads((margins_dir / f"{v}.json").read_text())
            if saved[name]["ids"] != sets[name]["ids"]:
                raise SystemExit(f"ensemble: variant {v} was scored on other {name} pairs")
            m = saved[name]["margins"]
            sd = statistics.pstdev(m) or 1.0
            z = [x / sd for x in m]
            total = z if total is None else [t + x for t, x in zip(total, z)]
        out[name] = total
    return out


def append_record(path: Path, rec: dict) -> None:
    with file_lock(path):
        runs = json.loads(path.read_text()) if path.is_file() else []
        runs.append(rec)
        write_json(path, runs)


def _ci(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "-"
    ci = e.get("ci")
    return f"{e['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] n={e['n']}" if ci else f"{e['value']:.3f} n={e['n']}"


def settings_text(r: dict) -> str:
    s = r["settings"]
    if s.get("ensemble"):
        return "ensemble of " + " + ".join(s["ensemble"]) + " (sum of standardised margins)"
    j = s["judge"]
    if r.get("train") and r["train"]["steps"] == 0:
        return "no training: the zero-initialised head (every pair a tie)"
    layers = "all blocks" if not j.get("trainable_layers") else f"top {j['trainable_layers']} blocks"
    if (j.get("lora") or {}).get("r"):
        layers = f"LoRA r {j['lora']['r']} on every block + head"
    out = (f"n_train {s['n_judge_train']}, {layers}, lr {j['lr']:g}, head_lr {j['head_lr']:g}, "
           f"{j['epochs']} ep, batch {j['batch_size']}, len {j['max_length']}/{j['max_prompt_length']}")
    if s.get("balance") not in (None, "none"):
        out += f", balance {s['balance']}"
    if j.get("length_term"):
        alpha = (r.get("train") or {}).get("length_coef")
        out += ", length term in the loss" + (f" (alpha {alpha:+.3f} per 100 tokens)" if alpha is not None else "")
    return out


def table(path: Path) -> str:
    """Markdown table of every recorded run (bench/README.md "Judge levers")."""
    runs = json.loads(path.read_text()) if path.is_file() else []
    head = ("| run | settings | agreement hh [95% CI] | longer-wins hh | hh shorter-preferred | agreement gpt4 [95% CI] | "
            "longer-wins gpt4 | gpt4 shorter-preferred | prefers longer (hh / gpt4) | loss first -> last block | train s | wall s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        loss = r["train"]["loss"] if r.get("train") else None
        lines.append("| " + " | ".join([
            r["variant"], settings_text(r), _ci(r["hh"]["agreement"]), f"{r['hh']['longer_wins']['value']:.3f}", _ci(r["hh"]["shorter_preferred"]),
            _ci(r["gpt4"]["agreement"]), f"{r['gpt4']['longer_wins']['value']:.3f}", _ci(r["gpt4"]["shorter_preferred"]),
            " / ".join("-" if r[k]["judge_prefers_longer"] is None else f"{r[k]['judge_prefers_longer']:.2f}" for k in ("hh", "gpt4")),
            f"{loss['first_block_mean']:.3f} -> {loss['last_block_mean']:.3f}" if loss else "-",
            f"{r['time_s']['train']:.0f}" if r.get("time_s") else "-", f"{r['wall_s']:.0f}"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.table:
        print(table(Path(args.results)))
        return {}
    if not args.variant:
        raise SystemExit("--variant is required")
    if args.threads:
        torch.set_num_threads(args.threads)
    data_cfg, judge_cfg = settings(args)
    sets = eval_sets(data_cfg, args)
    rec: dict[str, Any] = {"variant": args.variant, "note": args.note, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    rec["settings"] = {"judge": OmegaConf.to_container(judge_cfg), "n_judge_train": data_cfg.n_judge_train, "balance": args.balance,
                       "split": SPLIT, "seed": args.seed, "ensemble": args.ensemble,
                       "eval": {"n_hh_per_subset": args.n_hh, "hh_subsets": HELPFUL, "n_gpt4_first": args.n_gpt4,
                                "max_length": args.eval_max_length or judge_cfg.max_length,
                                "max_prompt_length": args.eval_max_prompt_length or judge_cfg.max_prompt_length}}
    if args.dry:
        print(json.dumps(rec, indent=1), {k: len(v["prompts"]) for k, v in sets.items()})
        return rec
    t0 = time.time()
    if args.ensemble:
        margins = ensemble_margins(args.ensemble, sets, Path(args.margins_dir))
        rec["train"] = None
    else:
        part, margins = train_variant(args, data_cfg, judge_cfg, sets)
        rec.update(part)
    for name, s in sets.items():
        rec[name] = measure(margins[name], s, args.seed)
    rec["wall_s"] = round(time.time() - t0, 1)
    rec["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_avg_at_end": list(os.getloadavg()),
                      "python": platform.python_version(), "torch": torch.__version__}
    if not args.ensemble:
        Path(args.margins_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(args.margins_dir) / f"{args.variant}.json", {n: {"ids": sets[n]["ids"], "margins": [round(m, 5) for m in margins[n]]} for n in sets})
    append_record(Path(args.results), rec)
    summary = {k: rec[k]["agreement"] for k in sets} | {"longer_wins": {k: rec[k]["longer_wins"]["value"] for k in sets},
                                                        "shorter_pref": {k: rec[k]["shorter_preferred"]["value"] for k in sets},
                                                        "wall_s": rec["wall_s"]}
    if rec.get("train"):
        summary["loss"] = rec["train"]["loss"]
    print(json.dumps(summary, indent=1))
    return rec


if __name__ == "__main__":
    main()
