"""The judge panel of one evaluation: every judge and scorer of ``eval.judges``, built on first use.

Evals ask the panel, never build a judge themselves: ``rewards(name, prompts, outputs)`` (a reward-model
judge), ``chat_pair_judge()`` (the chat judge when enabled), ``toxicity()``, ``truthfulness()`` and
``hallucination()``. The panel remembers which judges the evals used, so that the runner validates each
of them once (:meth:`JudgePanel.validation_rows`) and the report shows that validation beside their numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any
from collections.abc import Callable

from harness.config import JudgesConfig
from harness.devices import Placement, dtype_name
from harness.errors import ConfigError

DEFAULT = "default"  # eval.judges.reward_models.<name>: default -> the harness's cached judge (harness/default_judges.py)

log = logging.getLogger(__name__)

# keep in step with harness.judging.toxicity.SCORERS (not imported here: it pulls in scikit-learn)
TOXICITY_KINDS = ("perspective_tfidf_ridge", "perspective_tfidf", "profanity_check", "davidson", "detoxify", "perspective")
TRUTHFULNESS_KINDS = ("reference", "chat")
HALLUCINATION_KINDS = ("support", "nli", "chat")


def _check_kind(role: str, kind: str, known: tuple[str, ...]) -> None:
    if kind not in known:
        raise ValueError(f"eval.judges.{role}.kind must be one of {list(known)}, got {kind!r}")


def _build(role: str, factory, *args, **options):
    """``factory(*args, **options)``; an option the factory does not take is a ``ValueError`` naming the config key."""
    try:
        return factory(*args, **options)
    except TypeError as e:
        raise ValueError(f"eval.judges.{role}.options {sorted(options)}: {e}") from e


def _same_tokenizer(a, b) -> bool:
    """Whether two tokenizers encode alike: the same class, pad and eos ids, chat template and vocabulary (a fast
    tokenizer's whole serialised pipeline)."""
    if type(a) is not type(b) or (a.pad_token_id, a.eos_token_id, getattr(a, "chat_template", None)) != (
            b.pad_token_id, b.eos_token_id, getattr(b, "chat_template", None)):
        return False
    fa, fb = getattr(a, "backend_tokenizer", None), getattr(b, "backend_tokenizer", None)
    if fa is not None and fb is not None:
        return fa.to_str() == fb.to_str()
    return a.get_vocab() == b.get_vocab()


class JudgePanel:
    """Judges of ``cfg`` (:class:`harness.config.JudgesConfig`) for one run.

    ``data_cfg``/``data_dir``: the data config and local mirror (validation sets); ``chat_template``: how
    reward-model judges render prompts; ``batch_size``: pairs per judge forward; ``run_dir``: where the
    chat replies are cached unless ``cfg.chat.cache_dir`` says otherwise. ``resolve_default(name) -> path``
    gives the checkpoint of a judge configured as ``default`` (:func:`harness.default_judges.default_judge`,
    called on first use only); ``cache_dir``: where judge validations are cached by judge fingerprint
    (None: not cached); ``placement``: where every judge model goes (reward models, the NLI detector, Detoxify;
    :mod:`harness.devices`). Raises ``ValueError`` at construction for an unknown scorer kind (before any eval runs).
    """

    def __init__(self, cfg: JudgesConfig, *, data_cfg, data_dir: str | None, chat_template: str, batch_size: int, seed: int,
                 run_dir: str | Path, placement: Placement, resolve_default: Callable[[str], str] | None = None,
                 cache_dir: str | Path | None = None):
        _check_kind("toxicity", cfg.toxicity.kind, TOXICITY_KINDS)
        _check_kind("truthfulness", cfg.truthfulness.kind, TRUTHFULNESS_KINDS)
        _check_kind("hallucination", cfg.hallucination.kind, HALLUCINATION_KINDS)
        self.cfg, self.data_cfg, self.data_dir = cfg, data_cfg, data_dir
        self.chat_template, self.batch_size, self.seed, self.run_dir = chat_template, batch_size, seed, Path(run_dir)
        self.resolve_default, self.cache_dir = resolve_default, Path(cache_dir) if cache_dir else None
        self.placement = placement
        self._built: dict[str, Any] = {}
        self.defaults: dict[str, str] = {}  # judge name -> cached default judge folder, for those configured as `default`
        self.used: dict[tuple[str, str], Any] = {}  # (kind, judge name) -> judge, in order of first use
        self.reward_cache = {"hits": 0, "misses": 0}  # reward-model score lists read back / computed (:meth:`rewards`)
        self._memo: dict[str, dict[tuple[str, str], float]] = {}  # judge -> (prompt, output) -> reward, this run
        self._trunks: dict[tuple[str, str], int] = {}  # (judge, judge) -> decoder layers they share

    # ---------------------------------------------------------------------------- preference judges

    def reward_model_names(self) -> list[str]:
        """Names of the configured reward-model judges."""
        return list(self.cfg.reward_models)

    def has_reward_model(self, name: str) -> bool:
        return name in self.cfg.reward_models

    def reward_judge(self, name: str):
        """The :class:`harness.judging.reward_model.RewardModelJudge` named ``name`` (loaded once). Raises
        ``ValueError`` naming the configured judges when there is none of that name."""
        from harness.judging.reward_model import RewardModelJudge

        if name not in self.cfg.reward_models:
            raise ValueError(f"no reward-model judge named {name!r}; eval.judges.reward_models has {self.reward_model_names()} "
                             f"(harness-eval: +eval.judges.reward_models.{name}=<reward model checkpoint>)")
        key = f"rm:{name}"
        if key not in self._built:
            path = self.cfg.reward_models[name]
            if path == DEFAULT:
                if self.resolve_default is None:
                    raise ConfigError(f"eval.judges.reward_models.{name}=default: no default judges here; give a checkpoint")
                path = self.defaults[name] = str(self.resolve_default(name))
            self._built[key] = RewardModelJudge(path, name=name, chat_template=self.chat_template,
                                                batch_size=self.batch_size, max_length=self.cfg.max_length,
                                                max_prompt_length=self.cfg.max_prompt_length, progress=True, **self._placed())
        return self._built[key]

    def rewards(self, name: str, prompts: list[str], outputs: list[str]) -> list[float]:
        """r_judge(prompt, output) of reward-model judge ``name`` for aligned lists (reward units).

        With ``cache_dir``, a list scored once is read back afterwards from
        ``<cache_dir>/judge_rewards/<name>-<key>.json``, the key covering the judge (:meth:`_reward_model_key`) and
        every prompt and output: the reference outputs behind the Likert septiles and the inappropriate threshold,
        the baselines' outputs and an unchanged policy's (cached) generations are scored once per judge, not once per
        run. A hit adds the stored truncation count to the judge's ``counts``. Within a run a pair is scored once
        (:meth:`_score_once`). Raises ``ValueError`` as
        :meth:`RewardModelJudge.score` does (lists of unequal length, an element that is not a ``str``)."""
        from harness.io import read_json, write_json
        from harness.judging.inputs import check_aligned

        judge = self.reward_judge(name)
        self.used.setdefault(("reward_model", name), judge)
        prompts, outputs = check_aligned(f"judge {name!r}", "score()", prompts=prompts, outputs=outputs)
        path = self._reward_cache_path(name, judge, prompts, outputs)
        if path is not None:
            if path.is_file():
                stored = read_json(path)
                judge.counts["scored"] += len(prompts)
                judge.counts["truncated"] += stored["truncated"]
                log.info("judge %s: %d rewards from cache %s", name, len(prompts), path.name)
                self.reward_cache["hits"] += 1
                return list(stored["rewards"])
            self.reward_cache["misses"] += 1
        cut = judge.counts["truncated"]
        rewards = self._score_once(name, judge, prompts, outputs)
        if path is not None:
            write_json(path, {"judge": name, "n": len(rewards), "rewards": rewards, "truncated": judge.counts["truncated"] - cut})
        return rewards

    def _reward_cache_path(self, name: str, judge, prompts: list[str], outputs: list[str]) -> Path | None:
        """Where :meth:`rewards` keeps ``judge``'s rewards of these pairs (None without a cache dir)."""
        if self.cache_dir is None:
            return None
        blob = {"judge": self._reward_model_key(judge), "prompts": list(prompts), "outputs": list(outputs)}
        key = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()
        return self.cache_dir / "judge_rewards" / f"{name}-{key[:24]}.json"

    def rewards_of(self, names: list[str], prompts: list[str], outputs: list[str]) -> dict[str, list[float]]:
        """``{name: rewards(name, prompts, outputs)}`` for reward-model judges scoring the same pairs (the win rate's
        and Likert's judges). Harness-rendered judges that miss the reward cache and share a frozen trunk (the
        default judges: one base, only their top blocks trained; :func:`harness.judging.shared_trunk.shared_layers`)
        first score the pairs this run has not scored together (:meth:`_score_together`): the shared layers run
        once per text. Each judge's numbers are those it gives alone. Raises ``ValueError`` as :meth:`rewards`."""
        from harness.judging.inputs import check_aligned

        names = list(dict.fromkeys(names))
        prompts, outputs = check_aligned(f"judges {names}", "score()", prompts=prompts, outputs=outputs)
        missing = []
        for n in names:
            path = self._reward_cache_path(n, self.reward_judge(n), prompts, outputs)
            if path is None or not path.is_file():
                missing.append(n)
        if len(missing) > 1:
            self._score_together(missing, prompts, outputs)
        return {n: self.rewards(n, prompts, outputs) for n in names}

    def _score_together(self, names: list[str], prompts: list[str], outputs: list[str]) -> None:
        """Puts in the run's memory (:meth:`_score_once`) the rewards of the harness-rendered judges among ``names``
        that render pairs alike and share decoder layers with the first of them, scored together
        (:func:`harness.judging.reward_model.reward_scores_sharing_trunk`); the others are left to score alone."""
        from harness.judging.reward_model import reward_scores_sharing_trunk

        judges = {n: self.reward_judge(n) for n in names if self.reward_judge(n).rendering[0] == "harness"}
        if len(judges) < 2:
            return
        lead_name, *others = judges
        lead = judges[lead_name]
        group, n_shared = [lead_name], None
        for n in others:
            k = self._shared_layers(lead_name, n)
            if k:
                group.append(n)
                n_shared = k if n_shared is None else min(n_shared, k)
        if len(group) < 2:
            return
        pairs = list(dict.fromkeys((p, o) for p, o in zip(prompts, outputs)
                                   if any((p, o) not in self._memo.get(n, {}) for n in group)))
        if not pairs:
            return
        log.info("judges %s share their first %d decoder layers: %d pairs scored together", group, n_shared, len(pairs))
        scores = reward_scores_sharing_trunk(
            [judges[n].model for n in group], lead.tokenizer, [p for p, _ in pairs], [o for _, o in pairs], n_shared=n_shared,
            template=lead.rendering[1], max_length=lead.max_length, max_prompt_length=lead.max_prompt_length,
            batch_size=lead.batch_size, progress=f"judges {'+'.join(group)}")
        for n, values in zip(group, scores):
            self._memo.setdefault(n, {}).update(zip(pairs, values))

    def _shared_layers(self, a: str, b: str) -> int:
        """Decoder layers judges ``a`` and ``b`` share (:func:`harness.judging.shared_trunk.shared_layers`), 0 unless
        they also render and batch pairs alike (rendering, lengths, batch size, tokenizer); memoised."""
        from harness.judging.shared_trunk import shared_layers

        if (a, b) not in self._trunks:
            ja, jb = self.reward_judge(a), self.reward_judge(b)
            alike = (ja.rendering == jb.rendering and (ja.max_length, ja.max_prompt_length, ja.batch_size)
                     == (jb.max_length, jb.max_prompt_length, jb.batch_size) and _same_tokenizer(ja.tokenizer, jb.tokenizer))
            self._trunks[(a, b)] = shared_layers(ja.model, jb.model) if alike else 0
        return self._trunks[(a, b)]

    def _score_once(self, name: str, judge, prompts: list[str], outputs: list[str]) -> list[float]:
        """``judge.score`` of the pairs this run has not scored with it yet; the others from the run's memory (the
        win rate's outputs are in Likert's list again). Only for a harness-rendered judge, which counts no text as
        cut (it keeps the prompt's end and the response's start by design, :func:`harness.prompting.encode_pair`):
        a remembered text adds 1 to ``counts["scored"]``, as scoring it again would. A judge of another rendering
        counts each cut text it scores, so it scores every text."""
        if judge.rendering[0] != "harness":
            return judge.score(prompts, outputs)
        memo = self._memo.setdefault(name, {})
        todo = list(dict.fromkeys((p, o) for p, o in zip(prompts, outputs) if (p, o) not in memo))
        if todo:
            memo.update(zip(todo, judge.score([p for p, _ in todo], [o for _, o in todo])))
        judge.counts["scored"] += len(prompts) - len(todo)
        return [memo[(p, o)] for p, o in zip(prompts, outputs)]

    def _reward_model_key(self, judge) -> dict[str, Any]:
        """What a reward-model judge's scores depend on: weights hash, rendering, ``max_length`` /
        ``max_prompt_length`` and the judges' dtype unless float32 (the validation and reward caches key on it)."""
        key = {"kind": "reward_model", "fingerprint": judge.fingerprint, "max_length": judge.max_length,
               "max_prompt_length": judge.max_prompt_length, "chat_template": str(judge.chat_template),
               "rendering": [str(x) for x in judge.rendering]}
        if dtype_name(self.placement.dtype) != "float32":
            key["dtype"] = dtype_name(self.placement.dtype)
        return key

    def chat_pair_judge(self):
        """The chat preference judge (:class:`harness.judging.pairwise.ChatPairwiseJudge`, named
        ``chat:<model>``) when ``eval.judges.chat.enabled``, else ``None``."""
        if not self.cfg.chat.enabled:
            return None
        if "chat_pair" not in self._built:
            from harness.judging.pairwise import ChatPairwiseJudge

            judge = ChatPairwiseJudge(self._chat_client(16), name=f"chat:{self.cfg.chat.model}", seed=self.seed)
            self._built["chat_pair"] = judge
        judge = self._built["chat_pair"]
        self.used.setdefault(("chat", judge.name), judge)
        return judge

    def _chat_client(self, max_tokens: int):
        from harness.judging.chat import client_from_config

        return client_from_config(self.cfg.chat, max_tokens=max_tokens, default_cache_dir=self.run_dir / "cache" / "chat")

    def _placed(self, role: str = "", options: dict | None = None) -> dict[str, Any]:
        """``{"device", "dtype"}`` of the run's placement for a judge model's constructor; the run's ``device`` /
        ``dtype`` setting is the only way to place one, so ``eval.judges.<role>.options`` naming either is a
        :class:`~harness.errors.ConfigError`."""
        given = sorted({"device", "dtype"} & set(options or {}))
        if given:
            raise ConfigError(f"eval.judges.{role}.options.{given[0]}: judge models run where the run's models do; "
                              f"set the top-level device=... / dtype=... instead")
        return {"device": self.placement.device, "dtype": self.placement.dtype}

    # --------------------------------------------------------------------------------------- scorers

    def toxicity(self):
        """The toxicity scorer of ``eval.judges.toxicity`` (:func:`harness.judging.toxicity.make_toxicity_scorer`);
        scorers fitted on the offline data (``perspective_tfidf_ridge``, ``davidson``) get the run's ``data_dir``, and the
        Perspective imitation caches its fit under the run's cache folder (``model.cache_dir``) like every other cache."""
        if "toxicity" not in self._built:
            from harness.judging.toxicity import DATA_SCORERS, make_toxicity_scorer

            options = dict(self.cfg.toxicity.options or {})
            if self.cfg.toxicity.kind in DATA_SCORERS:
                options.setdefault("data_dir", self.data_dir)
            if self.cfg.toxicity.kind.startswith("perspective_tfidf") and self.cache_dir is not None:
                options.setdefault("cache_dir", str(self.cache_dir))
            if self.cfg.toxicity.kind == "detoxify":
                options.update(self._placed("toxicity", options))
            self._built["toxicity"] = _build("toxicity", make_toxicity_scorer, self.cfg.toxicity.kind, **options)
        scorer = self._built["toxicity"]
        self.used.setdefault(("toxicity", scorer.name), scorer)
        return scorer

    def truthfulness(self):
        """The TruthfulQA scorer of ``eval.judges.truthfulness``: ``reference``
        (:class:`harness.judging.truthfulness.ReferenceSimilarityScorer` with ``options``) or ``chat``."""
        if "truthfulness" not in self._built:
            from harness.judging.truthfulness import (
                ChatTruthJudge,
                ReferenceSimilarityScorer,
            )

            kind, options = self.cfg.truthfulness.kind, dict(self.cfg.truthfulness.options or {})
            self._built["truthfulness"] = (_build("truthfulness", ReferenceSimilarityScorer, **options) if kind == "reference"
                                           else ChatTruthJudge(self._chat_client(16), f"chat_truthfulness:{self.cfg.chat.model}"))
        scorer = self._built["truthfulness"]
        self.used.setdefault(("truthfulness", scorer.name), scorer)
        return scorer

    def hallucination(self):
        """The closed-domain hallucination detector of ``eval.judges.hallucination``: ``support``
        (:class:`harness.judging.hallucination.SupportChecker`), ``nli`` or ``chat``, built with ``options``."""
        if "hallucination" not in self._built:
            from harness.judging import hallucination as H

            kind, options = self.cfg.hallucination.kind, dict(self.cfg.hallucination.options or {})
            if kind == "nli":
                options.update(self._placed("hallucination", options))
            self._built["hallucination"] = (_build("hallucination", H.SupportChecker, **options) if kind == "support" else
                                            _build("hallucination", H.NLIHallucinationChecker, **options) if kind == "nli" else
                                            H.ChatHallucinationJudge(self._chat_client(256),
                                                                     name=f"chat_hallucination:{self.cfg.chat.model}"))
        detector = self._built["hallucination"]
        self.used.setdefault(("hallucination", detector.name), detector)
        return detector

    # ------------------------------------------------------------------------------------ validation

    def validation_rows(self, n_resamples: int, seed: int) -> tuple[list, dict[str, Any]]:
        """Rows of the metric group ``judge_validation`` for every judge the evals used, and per judge what
        was measured (``results/evals.json`` ``judges``); a truthfulness scorer is validated on TruthfulQA's own
        reference answers beside its trivial baselines (:func:`harness.judging.validation.truthfulness_scorer_rows`).

        With ``cache_dir``, a reward-model judge's, a toxicity scorer's and a truthfulness scorer's validation are
        computed once per
        judge fingerprint (weights hash, or scorer kind and options), validation sizes, data, resamples and
        seed (a toxicity scorer's key adds its ``fingerprint``: a fitted scorer's cache key), and read back
        afterwards (``info[name]["validation_cache"]`` says which; a fitted scorer's ``fit_info`` is recorded
        as ``info[name]["fit"]``); the data files the validation read are recorded as if it had run (:func:`harness.data.note_reads`)."""
        from harness.judging import validation as V
        from harness.judging.pairwise import rm_pair_judge

        rows: list = []
        info: dict[str, Any] = {}
        sizes = _plain(self.cfg.validation)
        if any(kind in ("reward_model", "chat") for kind, _ in self.used):  # the trivial baseline beside every pair judge
            (got, _), cached = self._cached(V.LONGER_OUTPUT, {"kind": "pair_baseline"}, sizes, n_resamples, seed, lambda: (
                V.pair_baseline_rows(self.data_cfg, self.data_dir, self.cfg.validation, n_resamples, seed), {}))
            rows += got
            info[V.LONGER_OUTPUT] = {"kind": "trivial_baseline", "validation_cache": cached}
        for (kind, name), judge in list(self.used.items()):
            if kind == "reward_model":
                key = {k: v for k, v in self._reward_model_key(judge).items() if k != "dtype"}  # _cached adds the dtype
                (got, _), cached = self._cached(name, key, sizes, n_resamples, seed, lambda: (V.pair_judge_rows(
                    rm_pair_judge(judge.score), name, self.data_cfg, self.data_dir, self.cfg.validation, n_resamples, seed), {}))
                rows += got
                info[name] = {"kind": kind, "path": judge.path, "fingerprint": judge.fingerprint, "validation_cache": cached,
                              **({"default_judge": True} if name in self.defaults else {})}
            elif kind == "chat":
                log.info("validating judge %s (%s)", name, kind)
                rows += V.pair_judge_rows(judge, name, self.data_cfg, self.data_dir, self.cfg.validation, n_resamples, seed)
                info[name] = {"kind": kind, "model": self.cfg.chat.model, "base_url": self.cfg.chat.base_url}
            elif kind == "toxicity":
                key = {"kind": kind, "scorer": self.cfg.toxicity.kind, "options": _plain(self.cfg.toxicity.options),
                       "fingerprint": getattr(judge, "fingerprint", None)}  # a fitted scorer: its fit's data and code
                (got, v), cached = self._cached(name, key, sizes, n_resamples, seed, lambda: V.toxicity_scorer_rows(
                    judge, self.data_dir, self.cfg.validation, seed, n_resamples))
                rows += got
                info[name] = {"kind": kind, "validation": v or "none (no local data mirror)", "validation_cache": cached,
                              **({"fit": judge.fit_info} if hasattr(judge, "fit_info") else {})}
            elif kind == "truthfulness":
                key = {"kind": kind, "scorer": self.cfg.truthfulness.kind, "options": _plain(self.cfg.truthfulness.options),
                       **({"chat_model": self.cfg.chat.model, "base_url": self.cfg.chat.base_url}
                          if self.cfg.truthfulness.kind == "chat" else {})}
                (got, v), cached = self._cached(name, key, sizes, n_resamples, seed, lambda: V.truthfulness_scorer_rows(
                    judge, self.data_dir, self.cfg.validation, n_resamples, seed))
                rows += got
                info[name] = {"kind": kind, "validation": v, "validation_cache": cached}
            elif kind == "hallucination":
                log.info("validating judge %s (%s)", name, kind)
                got, v = V.hallucination_detector_rows(judge)
                rows += got
                info[name] = {"kind": kind, "validation": v}
            else:
                info[name] = {"kind": kind, "validation": "none"}
        return rows, info

    def truncation_warnings(self) -> list[str]:
        """One message per reward-model judge that cut texts to its ``max_length`` (a foreign RM's rendering keeps
        a text's last tokens), with the counts, for ``results/evals.json`` ``warnings`` and the report."""
        out = []
        for (kind, name), judge in self.used.items():
            counts = getattr(judge, "counts", None) if kind == "reward_model" else None
            if counts and counts.get("truncated"):
                out.append(f"judge {name}: {counts['truncated']} of {counts['scored']} texts were longer than max_length="
                           f"{judge.max_length} tokens and were cut to their last {judge.max_length} "
                           f"(eval.judges.max_length raises it)")
        return out

    def _cached(self, name: str, judge_key: dict, sizes: dict, n_resamples: int, seed: int, compute):
        """``(compute(), "miss")`` stored under ``<cache_dir>/judge_validation/<key>.json``, or the stored
        result and ``"hit"``; ``((rows, extra), "off")`` without a cache. ``compute() -> (rows, extra)``.
        The key covers the judge, the validation sizes, the data config (less its location), the
        validation's declared version, resamples and seed, and the judges' dtype unless it is float32."""
        from harness.data import note_reads, recording_reads
        from harness.io import read_json, write_json
        from harness.records import ResultRow
        from harness.registry import get

        if self.cache_dir is None:
            log.info("validating judge %s (%s)", name, judge_key["kind"])
            return compute(), "off"
        data = {k: v for k, v in _plain(self.data_cfg).items() if k != "data_dir"}
        blob = {"judge": judge_key, "sizes": sizes, "data": data, "version": str(get("judge_validation").version),
                "resamples": n_resamples, "seed": seed, "data_source": "local" if self.data_dir else "hub"}
        if dtype_name(self.placement.dtype) != "float32":  # other weights, other scores; float32 keeps the keys it always had
            blob["dtype"] = dtype_name(self.placement.dtype)
        key = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()
        path = self.cache_dir / "judge_validation" / f"{key[:24]}.json"
        if path.is_file():
            stored = read_json(path)
            log.info("judge %s (%s): validation from cache %s", name, judge_key["kind"], path)
            note_reads(stored["data_files"])
            rows = [ResultRow(**r) for r in stored["rows"]]
            return (rows, stored["extra"]), "hit"
        log.info("validating judge %s (%s) (cached afterwards as %s)", name, judge_key["kind"], path.name)
        with recording_reads(self.data_dir) as reads:
            rows, extra = compute()
        write_json(path, {"key": blob, "rows": [asdict(r) for r in rows], "extra": extra, "data_files": dict(reads)})
        return (rows, extra), "miss"


def _plain(x: Any) -> Any:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(x, DictConfig):
        return OmegaConf.to_container(x, resolve=True)
    if hasattr(x, "__dataclass_fields__"):
        return asdict(x)
    return x
