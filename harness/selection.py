"""Which records each stage uses: deterministic, seeded selections with fingerprints for ``run.json``.

hh_rlhf comparisons are split by a seeded hash of their prompt into the policy's RM data
(``rm_train``/``rm_val``) and the evaluation judge's data (``judge_train``/``judge_val``), so no
prompt is shared between the RM a policy optimises and the judge that scores it. PPO prompts are
first user turns of ``rm_train`` prompts; evaluation prompts are AlpacaEval instructions, which no
stage trains on. The simulated labeler's prompts are other first user turns of ``rm_train``
prompts: none is a PPO prompt, an AlpacaEval instruction or a first turn of a judge-split prompt
(as in the paper, the RM and PPO prompt sets are disjoint).

A size that asks for more records than exist is a :class:`~harness.errors.ConfigError` naming the
key (:func:`harness.data.require_available`), except for the two subset-filtered judge splits,
which share ``n_judge_train``/``n_judge_val`` and take what their subsets have, with a warning.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from harness import data as D
from harness.config import DataConfig
from harness.errors import ConfigError, DataError
from harness.prompting import to_messages
from harness.records import Comparison, Demonstration, PretrainText, Prompt

log = logging.getLogger(__name__)


def _sample(records: list, n: int, seed: int) -> list:
    """The first ``n`` of a seeded shuffle (all of them if fewer), in a stable order."""
    records = list(records)
    random.Random(seed).shuffle(records)
    return records[:n]


def _files_fingerprint(cfg: DataConfig, relpaths: list[str]) -> dict[str, str]:
    root = D.resolve_data_dir(cfg.data_dir)
    if root is None:
        return {p: "hub" for p in relpaths}
    return {p: D.file_fingerprint(Path(root) / p) for p in relpaths}


def _hh_splits(cfg: DataConfig) -> tuple[dict[str, list[Comparison]], dict[str, str]]:
    """All hh-rlhf comparisons split by a seeded hash of the prompt, and the files' fingerprints."""
    all_pairs = D.load_hh_rlhf(cfg.data_dir, cfg.hh_subsets, hub_id=cfg.hub_hh_rlhf)
    parts = D.seeded_split(all_pairs, lambda c: c.prompt, dict(cfg.split_fractions), cfg.seed)
    return parts, _files_fingerprint(cfg, [f"hh_rlhf/{s}_test.jsonl.gz" for s in cfg.hh_subsets])


JUDGE_SPLITS = {"judge_helpful": ("helpful-base", "helpful-online", "helpful-rejection-sampled"), "judge_harmless": ("harmless-base",)}
SPLITS = ("rm", "judge", *JUDGE_SPLITS)


def _subset(c: Comparison) -> str:
    return c.source.split("/", 1)[-1]


def comparisons(cfg: DataConfig, split: str) -> tuple[list[Comparison], list[Comparison], dict[str, str]]:
    """(train, val, fingerprints) human comparisons for ``split``.

    ``rm``: the policy's RM (``rm_train``/``rm_val`` prompts). ``judge``: an evaluation judge on
    every hh subset of the judge-side prompts. ``judge_helpful`` / ``judge_harmless``: the two
    evaluation judges the winrate eval uses, on the judge-side prompts of the helpful-* subsets and
    of harmless-base respectively (Bai et al. 2022's two preference data sets), so neither shares a
    prompt with the policy's RM or with each other. ``n_judge_train``/``n_judge_val`` apply to each.
    """
    if split not in SPLITS:
        raise ConfigError(f"comparisons: split must be one of {SPLITS}, got '{split}'")
    parts, fp = _hh_splits(cfg)
    side = "rm" if split == "rm" else "judge"
    train_pool, val_pool = parts[f"{side}_train"], parts[f"{side}_val"]
    if split in JUDGE_SPLITS:
        keep = set(JUDGE_SPLITS[split])
        train_pool = [c for c in train_pool if _subset(c) in keep]
        val_pool = [c for c in val_pool if _subset(c) in keep]
        if not train_pool or not val_pool:
            raise ConfigError(f"comparisons: split '{split}' needs hh subsets {sorted(keep)} in data.hh_subsets={list(cfg.hh_subsets)}")
    n_train, n_val = (cfg.n_rm_train, cfg.n_rm_val) if split == "rm" else (cfg.n_judge_train, cfg.n_judge_val)
    for part, n, pool in (("train", n_train, train_pool), ("val", n_val, val_pool)):
        key = f"data.n_{side}_{part}"
        if split in JUDGE_SPLITS and n > len(pool):
            log.warning("%s=%d: split '%s' has only %d %s comparisons (subsets %s); using all of them", key, n, split, len(pool),
                        part, sorted(JUDGE_SPLITS[split]))
        elif split not in JUDGE_SPLITS:
            D.require_available(key, n, len(pool), f"comparisons in the hh-rlhf {side}_{part} split (of data.hh_subsets, by data.split_fractions)")
    train = _sample(train_pool, n_train, cfg.seed)
    val = _sample(val_pool, n_val, cfg.seed + 1)
    fp[f"{split}_train_ids"] = D.records_fingerprint([c.id for c in train])
    fp[f"{split}_val_ids"] = D.records_fingerprint([c.id for c in val])
    return train, val, fp


def judge_validation_pairs(cfg: DataConfig, n: int | None) -> tuple[list[Comparison], dict[str, str]]:
    """Held-out human pairs for judge-human agreement: a seeded sample of ``n`` per hh subset from
    the ``judge_val`` prompts (never trained on by any judge or RM; all of them when ``n`` is None)."""
    parts, fp = _hh_splits(cfg)
    out: list[Comparison] = []
    for subset in cfg.hh_subsets:
        pool = [c for c in parts["judge_val"] if _subset(c) == subset]
        out += pool if n is None else _sample(pool, n, cfg.seed + 3)
    fp["judge_validation_ids"] = D.records_fingerprint([c.id for c in out])
    return out, fp


def demonstrations(cfg: DataConfig) -> tuple[list[Demonstration], list[Demonstration], dict[str, str]]:
    """(train, val, fingerprints) SFT demonstrations."""
    every = D.load_demonstrations(cfg.data_dir, hub_id=cfg.hub_demonstrations)
    D.require_available("data.n_sft_train + data.n_sft_val", cfg.n_sft_train + cfg.n_sft_val, len(every), "demonstrations")
    demos = _sample(every, cfg.n_sft_train + cfg.n_sft_val, cfg.seed)
    train, val = demos[: cfg.n_sft_train], demos[cfg.n_sft_train :]
    fp = _files_fingerprint(cfg, ["self_instruct_seed/seed_tasks.jsonl"])
    fp["sft_train_ids"] = D.records_fingerprint([d.id for d in train])
    return train, val, fp


def _first_turn(prompt: str) -> str:
    return to_messages(prompt)[0]["content"]


def _ppo_prompts(parts: dict[str, list[Comparison]], cfg: DataConfig) -> list[Prompt]:
    seen, prompts = set(), []
    for c in parts["rm_train"]:
        first = _first_turn(c.prompt)
        if first and len(first) <= cfg.max_ppo_prompt_chars and first not in seen:
            seen.add(first)
            prompts.append(Prompt(c.id, first, c.source))
    D.require_available("data.n_ppo_prompts", cfg.n_ppo_prompts, len(prompts),
                      f"distinct rm_train first turns of <= data.max_ppo_prompt_chars={cfg.max_ppo_prompt_chars} characters")
    return _sample(prompts, cfg.n_ppo_prompts, cfg.seed)


def ppo_prompts(cfg: DataConfig) -> tuple[list[Prompt], dict[str, str]]:
    """Prompts for PPO episodes: distinct, short first user turns of the RM-side hh prompts."""
    parts, fp = _hh_splits(cfg)
    prompts = _ppo_prompts(parts, cfg)
    fp["ppo_prompt_ids"] = D.records_fingerprint([p.id for p in prompts])
    return prompts, fp


def label_prompts(cfg: DataConfig) -> tuple[list[Prompt], dict[str, str]]:
    """Prompts for the simulated labeler (``harness-label``): ``cfg.n_label_prompts`` distinct first
    user turns of ``rm_train`` prompts, at most ``cfg.max_label_prompt_chars`` long, in a seeded order.

    None of them is one of the PPO prompts that :func:`ppo_prompts` selects with the same ``cfg``
    (same seed and ``n_ppo_prompts``), an AlpacaEval instruction (any of the 805, not only the
    evaluated sample), or the first user turn of any judge-split prompt (the judge must not rank
    prompts it was trained on). Raises :class:`~harness.errors.ConfigError` if fewer than ``cfg.n_label_prompts`` remain.
    """
    parts, fp = _hh_splits(cfg)
    ppo = _ppo_prompts(parts, cfg)
    prompts = _label_prompts(parts, cfg, ppo)
    fp.update(_files_fingerprint(cfg, ["alpaca_eval/text_davinci_003_model_outputs.json"]))
    fp["ppo_prompt_ids"] = D.records_fingerprint([p.id for p in ppo])
    fp["label_prompt_ids"] = D.records_fingerprint([p.id for p in prompts])
    return prompts, fp


def _held_out_first_turns(parts: dict[str, list[Comparison]], cfg: DataConfig, excluded: set[str], max_chars: int) -> list[Prompt]:
    """Distinct first user turns of ``rm_train`` prompts of at most ``max_chars`` characters that are not in ``excluded``,
    nor a first turn of a judge-split prompt, nor an AlpacaEval instruction; in data order."""
    excluded = set(excluded) | {_first_turn(c.prompt) for split in ("judge_train", "judge_val") for c in parts[split]}
    excluded |= {p.prompt.strip() for p in D.load_alpaca_eval_prompts(cfg.data_dir, hub_id=cfg.hub_alpaca_eval)}
    seen, pool = set(), []
    for c in parts["rm_train"]:
        first = _first_turn(c.prompt)
        if first and len(first) <= max_chars and first not in seen and first not in excluded:
            seen.add(first)
            pool.append(Prompt(c.id, first, c.source))
    return pool


def _label_prompts(parts: dict[str, list[Comparison]], cfg: DataConfig, ppo: list[Prompt]) -> list[Prompt]:
    pool = _held_out_first_turns(parts, cfg, {p.prompt for p in ppo}, cfg.max_label_prompt_chars)
    D.require_available("data.n_label_prompts", cfg.n_label_prompts, len(pool),
                      f"eligible rm_train first turns (<= data.max_label_prompt_chars={cfg.max_label_prompt_chars} chars)")
    return _sample(pool, cfg.n_label_prompts, cfg.seed + 2)


def probe_prompts(cfg: DataConfig, n: int) -> tuple[list[Prompt], dict[str, str]]:
    """``n`` prompts for PPO's probe (``ppo.probe``, :mod:`trainers.probe`): first user turns of ``rm_train`` prompts of at
    most ``data.max_ppo_prompt_chars`` characters, like PPO's own, in a seeded order, and none of them a PPO prompt, a
    simulated labeler's prompt (with this ``cfg``), a judge-split first turn or an AlpacaEval instruction: PPO never
    trains on them and the proxy RM never saw them ranked. Raises :class:`~harness.errors.ConfigError` naming
    ``ppo.probe.prompts`` if fewer than ``n`` remain.
    """
    parts, fp = _hh_splits(cfg)
    ppo = _ppo_prompts(parts, cfg)
    label_pool = _held_out_first_turns(parts, cfg, {p.prompt for p in ppo}, cfg.max_label_prompt_chars)
    # what the labeler takes with this cfg (all of its pool when data.n_label_prompts asks for more: it then refuses to run)
    held_out = {p.prompt for p in ppo} | {p.prompt for p in _sample(label_pool, cfg.n_label_prompts, cfg.seed + 2)}
    pool = _held_out_first_turns(parts, cfg, held_out, cfg.max_ppo_prompt_chars)
    D.require_available("ppo.probe.prompts", n, len(pool),
                      "rm_train first turns held out from PPO, the labeler, the judges and AlpacaEval")
    prompts = _sample(pool, n, cfg.seed + 3)
    fp["probe_prompt_ids"] = D.records_fingerprint([p.id for p in prompts])
    return prompts, fp


def comparisons_from_file(cfg: DataConfig, path: str | Path) -> tuple[list[Comparison], list[Comparison], dict[str, str]]:
    """(train, val, fingerprints) from a Comparison JSONL file (:func:`harness.data.load_comparisons_jsonl`).

    Every record is used; a seeded hash of the prompt (``cfg.seed``) sends a ``cfg.comparisons_val_fraction``
    share of prompts to val, so comparisons of one prompt never straddle the split. Raises
    :class:`~harness.errors.ConfigError` if the fraction is not in (0, 1), :class:`~harness.errors.DataError`
    if either side comes out empty.
    """
    f = cfg.comparisons_val_fraction
    if not 0.0 < f < 1.0:
        raise ConfigError(f"data.comparisons_val_fraction must be in (0, 1), got {f}")
    path = Path(path)
    records = D.load_comparisons_jsonl(path)
    parts = D.seeded_split(records, lambda c: c.prompt, {"train": 1.0 - f, "val": f}, cfg.seed)
    train, val = parts["train"], parts["val"]
    if not train or not val:
        raise DataError(f"{path}: the seeded split (val fraction {f}) of {len(records)} comparisons left "
                        f"{len(train)} for training and {len(val)} for validation; both need at least one")
    fp = {f"comparisons:{path.name}": D.file_fingerprint(path),
          "comparisons_train_ids": D.records_fingerprint([c.id for c in train]),
          "comparisons_val_ids": D.records_fingerprint([c.id for c in val])}
    return train, val, fp


def pretrain_texts(cfg: DataConfig) -> tuple[list[PretrainText], dict[str, str]]:
    """Pretraining chunks for the ptx term."""
    texts = D.load_pretrain_text(cfg.data_dir, cfg.pretrain_chunk_chars, hub_id=cfg.hub_pretrain, hub_name=cfg.hub_pretrain_name)
    return texts, _files_fingerprint(cfg, ["tinyshakespeare/input.txt"])


def eval_prompts(cfg: DataConfig, n: int | None = None) -> tuple[list[Prompt], dict[str, str]]:
    """A seeded sample of ``n`` (default ``cfg.n_eval_prompts``) AlpacaEval instructions, in id order.
    Raises :class:`~harness.errors.ConfigError` when more are asked for than exist."""
    prompts = D.load_alpaca_eval_prompts(cfg.data_dir, hub_id=cfg.hub_alpaca_eval)
    D.require_available("data.n_eval_prompts" if not n else f"an eval's n={n}", n or cfg.n_eval_prompts, len(prompts),
                      "AlpacaEval instructions")
    chosen = sorted(_sample(prompts, n or cfg.n_eval_prompts, cfg.seed), key=lambda p: int(p.id))
    fp = _files_fingerprint(cfg, ["alpaca_eval/text_davinci_003_model_outputs.json"])
    fp["eval_prompt_ids"] = D.records_fingerprint([p.id for p in chosen])
    return chosen, fp
